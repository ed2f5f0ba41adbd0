export function tokenizeMain(_a: string[]): number { return 0; }
