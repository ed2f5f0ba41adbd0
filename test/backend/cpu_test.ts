/** The backend op suite on the CPU backend (2 threads and 1). */
import { CpuBackend } from "../../runtime/backend/cpu.ts";
import { backendOpSuite } from "./op_suite.ts";

backendOpSuite("cpu (2 threads)", () => new CpuBackend(2));
backendOpSuite("cpu (1 thread)", () => new CpuBackend(1));
