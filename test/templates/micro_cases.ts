/**
 * Small templates that each pin one jinja2 behaviour chat templates rely on (Python printing,
 * repr, tojson options, str methods, loop and macro scoping, generators, markup, strict
 * undefined, compile-time filter checks...). Rendered by both engines and compared.
 */

/** One micro case: a template and its variables. */
export interface MicroCase {
  /** What it checks. */
  name: string;
  /** Template source. */
  template: string;
  /** Variables. */
  context?: Record<string, unknown>;
}

const users = [
  { name: "ann", admin: true, age: 31 },
  { name: "bob", admin: false, age: 25 },
  { name: "cid", age: 40 },
];

/** The micro cases. */
export const MICRO_CASES: MicroCase[] = [
  {
    name: "python printing",
    template:
      "{{ none }}|{{ true }}|{{ false }}|{{ [1, 'a', none, true] }}|{{ {'a': 1.0, 'b': [1, 2]} }}|" +
      "{{ 0.00001 }}|{{ 1.5 }}|{{ 10 / 4 }}|{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|" +
      "{{ 3.0 }}|{{ 1 + 2.0 }}|{{ (1, 2) }}|{{ x }}|{{ 123456789012 }}|{{ -0.5 }}",
    context: { x: [1.5e20, 2.5e-7, -0.0001, 123.456] },
  },
  {
    name: "repr of strings",
    template: "{{ x }}",
    context: { x: ["x'y", "a\nb", 'q"', "tab\t", "é", "both'\"", "\u0001", "\\"] },
  },
  {
    name: "tojson options",
    template: "{{ x|tojson }}\n{{ x|tojson(indent=2) }}\n{{ x|tojson(separators=(',', ':')) }}\n" +
      "{{ x|tojson(ensure_ascii=True) }}\n{{ x|tojson(sort_keys=True) }}\n{{ 'a\u2028b'|tojson }}\n" +
      "{{ [1.5, 2.0, none, true]|tojson }}|{{ {}|tojson(indent=4) }}|{{ []|tojson(indent=4) }}",
    context: {
      x: {
        b: 'é ☕ "q" \\ \n\t\u0001\u007f',
        a: [1, { c: null, d: [] }, {}],
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        n: -1.25,
        big: 1e21,
      },
    },
  },
  {
    name: "str methods",
    template:
      "{{ '  xx\\n'.strip() }}|{{ '\\n\\nab\\n'.strip('\\n') }}|{{ 'xxhixx'.lstrip('x') }}|" +
      "{{ 'xxhixx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|" +
      "{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ 'hello wORLD'.title() }}|" +
      "{{ 'hELLO'.capitalize() }}|{{ 'abc'.upper() }}|{{ 'a-b-c'.replace('-', '+', 1) }}|" +
      "{{ 'x{}y{}'.format(1, 'z') }}|{{ '{name}!{0}'.format(7, name='n') }}|" +
      "{{ 'abcabc'.count('b') }}|{{ 'abc'.find('c') }}|{{ 'abc'.find('z') }}|" +
      "{{ 'abc'.startswith(('x', 'a')) }}|{{ 'abc'.endswith('bc') }}|{{ '12'.isdigit() }}|" +
      "{{ 'a\\nb\\r\\nc'.splitlines() }}|{{ 'a\\n\\nb\\n'.splitlines(true) }}|{{ '-'.join(['a', 'b']) }}|{{ 'ab'.zfill(4) }}|" +
      "{{ 'k=v=w'.partition('=') }}|{{ 'pre_x'.removeprefix('pre_') }}|{{ 'AbC'.swapcase() }}",
  },
  {
    name: "operators",
    template:
      "{{ '%s=%d' % ('a', 3) }}|{{ '%s' % none }}|{{ '%r' % 'q' }}|{{ 'ab' * 3 }}|{{ [1] * 2 }}|" +
      "{{ [1] + [2] }}|{{ 'a' ~ 1 ~ none ~ true }}|{{ 'a' < 'b' }}|{{ [1, 2] < [1, 3] }}|" +
      "{{ 1 == 1.0 }}|{{ 1 == true }}|{{ none == none }}|{{ 'a' in ['a'] }}|{{ 'a' in 'cat' }}|" +
      "{{ 'k' in {'k': 1} }}|{{ 1 in [1.0] }}|{{ [1, [2]] == [1, [2]] }}|{{ {'a': 1} == {'a': 1} }}|" +
      "{{ 'a' if false }}|{{ 'a' if false else 'b' }}|{{ not [] }}|{{ [] or 'e' }}|{{ 0 and 1 }}|" +
      "{{ -(3) }}|{{ 'ab' 'cd' }}",
  },
  {
    name: "loop scoping",
    template:
      "{% for i in range(3) %}{% if i == 0 %}{% set a = 1 %}{% endif %}[{{ a }}]{% endfor %}|" +
      "{% set b = 5 %}{% for i in range(3) %}[{{ b }}]{% set b = i %}{% endfor %}{{ b }}|" +
      "{% set ns = namespace(total=0) %}{% for i in range(4) %}{% set ns.total = ns.total + i %}" +
      "{% endfor %}{{ ns.total }}|{{ ns }}",
  },
  {
    name: "loop variables",
    template: "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}" +
      "{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem }}" +
      "{{ loop.nextitem }}{{ loop.cycle('o', 'e') }};{% endfor %}|" +
      "{% for x in [1, 2, 3, 4] if x is even %}{{ loop.length }}{{ x }}{% else %}none{% endfor %}|" +
      "{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}|" +
      "{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}|" +
      "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in nothing %}x{% endfor %}ok|" +
      "{% for x in [1, 2, 3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}|" +
      "{% for x in [1, 2, 3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}|" +
      "{% for x in [1] %}{% continue %}{% else %}E{% endfor %}|" +
      "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}",
  },
  {
    name: "macros",
    template:
      "{% macro m(a, b='x') %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}|" +
      "{{ m(1, 2, 3, k=4) }}|{% macro w() %}<{{ caller() }}>{% endmacro %}" +
      "{% call w() %}in{% endcall %}|{% macro v() %}{{ val }}{% endmacro %}{% set val = 1 %}" +
      "{% for i in [1] %}{% set val = 2 %}{{ v() }}{% endfor %}|{{ m is callable }}",
  },
  {
    name: "tests",
    template: "{{ 1 is number }}{{ true is number }}{{ true is integer }}{{ 1.0 is float }}" +
      "{{ 'a' is string }}{{ [] is sequence }}{{ {} is mapping }}{{ 'a' is iterable }}" +
      "{{ none is none }}{{ x is defined }}{{ x is undefined }}{{ 3 is odd }}{{ 'ab' is lower }}" +
      "{{ 'AB' is upper }}{{ true is boolean }}{{ 1 is boolean }}{{ {} is iterable }}" +
      "{{ 'a' is mapping }}{{ none is string }}{{ [1] is not none }}",
  },
  {
    name: "filters",
    template: "{{ [3, 1, 2]|sort }}|{{ ['b', 'A', 'c']|sort }}|" +
      "{{ ['b', 'A', 'c']|sort(case_sensitive=true) }}|{{ [3, 1, 2]|sort(reverse=true)|join(',') }}|" +
      "{{ {'b': 1, 'a': 2}|dictsort }}|{{ {'b': 1, 'a': 2}|dictsort(by='value') }}|" +
      "{{ [1, 2, 2, 3]|unique|list }}|{{ [1, 2]|map('string')|join('-') }}|" +
      "{{ users|map(attribute='name')|join(', ') }}|" +
      "{{ users|selectattr('admin')|map(attribute='name')|list }}|" +
      "{{ users|rejectattr('name', 'equalto', 'bob')|list|length }}|" +
      "{{ users|selectattr('admin', 'defined')|list|length }}|" +
      "{{ [1, 2, 3]|select('odd')|list }}|{{ [1, 2, 3]|reject('odd')|list }}|{{ 'abc'|list }}|" +
      "{{ [1, 2, 3]|first }}{{ [1, 2, 3]|last }}|{{ [1, 5, 2]|max }}{{ [1, 5, 2]|min }}|" +
      "{{ users|max(attribute='age') }}|{{ [1, 2, 3]|sum }}|{{ users|sum(attribute='age') }}|" +
      "{{ '42'|int + 1 }}|{{ '3.5'|float }}|{{ 'x'|int }}|{{ -3.7|int }}|{{ 3.14159|round(2) }}|" +
      "{{ 2.5|round }}|{{ 'hello wORLD-x'|title }}|{{ 'a\\nb\\n'|indent(2) }}|" +
      "{{ 'a\\n\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(2, blank=true) }}|{{ ' x '|trim }}|" +
      "{{ 'xax'|trim('x') }}|{{ none|default('d') }}|{{ ''|default('d', true) }}|" +
      "{{ y|default('u') }}|{{ y|d('u2') }}|{{ 'abc'|reverse }}|{{ [1, 2]|reverse|list }}|" +
      "{{ 'a b c'|wordcount }}|{{ '%s-%s'|format('a', 'b') }}|{{ [1, 2, 3, 4, 5]|batch(2)|list }}|" +
      "{{ 'x'|center(5) }}|{{ {'a': 1}|items|list }}|{{ 'abc'|length }}|{{ {'a': 1}|length }}|" +
      "{{ 1|string + 'x' }}|{{ [1, 'a']|string }}|{{ 'aBc'|lower }}|{{ 'aBc'|upper }}|" +
      "{{ 'hello'|capitalize }}|{{ [1, 2]|count }}|{{ 'a<b>'|e }}|{{ -2|abs }}|" +
      "{{ users|map(attribute='admin', default='?')|list }}|{{ [3, 1]|sort|first }}|" +
      "{{ 'a_b'|replace('_', ' ') }}|{{ 'long text here'|truncate(9, leeway=0) }}",
    context: { users },
  },
  {
    name: "generators",
    template: "{% set g = [1, 2, 3]|map('string') %}{{ g|join }}|{{ g|join }}|" +
      "{% if [1]|select('even') %}truthy{% endif %}|{{ [1, 2]|map('string')|first }}|" +
      "{{ none|map('upper')|list }}|{{ none|selectattr('a')|list }}|" +
      "{{ [1]|map('string') is sequence }}{{ [1]|map('string') is iterable }}|" +
      "{% set h = [1, 2, 3]|select %}{{ h|first }}{{ h|list }}",
  },
  { name: "generator length fails", template: "{{ [1, 2]|map('string')|length }}" },
  { name: "generator tojson fails", template: "{{ [1, 2]|select|tojson }}" },
  {
    name: "markup",
    template: "{{ '<b>'|safe + '<i>' }}|{{ '<b>'|e }}|{{ ('<x>'|safe) ~ '<y>' }}|" +
      "{{ '<' + ('>'|safe) }}|{{ '<a>'|safe }}",
  },
  {
    name: "slicing and indexing",
    template: "{{ [1, 2, 3, 4][1:3] }}|{{ 'hello'[::-1] }}|{{ [1, 2, 3][-1] }}|{{ 'abc'[5] }}|" +
      "{{ [1, 2, 3][:-1] }}|{{ [1, 2, 3, 4, 5][::2] }}|{{ 'abc'[1] }}|{{ x.0 }}|{{ [][0] }}",
    context: { x: ["first"] },
  },
  {
    name: "dict keys",
    template: "{% set d = {0: 'zero', 512: 'x', 'k': 1} %}{{ d[0] }}{{ d[512] }}|{{ d }}|" +
      "{{ 0 in d }}|{% for k, v in {2: 'b', 1: 'a'}|dictsort %}{{ k }}{{ v }}{% endfor %}|" +
      "{{ d|tojson }}|{{ d.get(0) }}|{{ d.get('zz', 'dflt') }}|{{ d.keys()|list }}|" +
      "{{ x.items is defined }}|{{ x['items'] }}|{{ x.get('items') }}|{{ x.values()|list }}|" +
      "{{ dict(a=1) }}|{{ {none: 1, 2.5: 2, (1, 'a'): 3} }}",
    context: { x: { items: 1 } },
  },
  {
    name: "whitespace control",
    template: "  {% if true %}\n    yes\n  {% endif %}\n{#- c -#}\n  {{- 'a' -}}\n  b\n" +
      "{% for i in [1, 2] %}\n  {{ i }}\n{% endfor %}\n{%- set x = 1 -%}\n   {# comment #}\n" +
      "tail  \n{%+ if true %}plus{% endif %}\n{% if true -%}\n  trimmed\n{%- endif %}\nend\n",
  },
  {
    name: "blocks",
    template: "{% set x %}a{{ 1 }}b{% endset %}[{{ x }}]|{% filter upper %}abc{% endfilter %}|" +
      "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{{ range(1, 10, 3)|list }}|{{ range(3)|list }}|" +
      "{% generation %}gen{% endgeneration %}",
  },
  {
    name: "strftime",
    template: "{{ strftime_now('%Y-%m-%d %H:%M:%S %a %A %b %B %j %p %I %y %e %d %m %%') }}",
  },
  {
    name: "undefined",
    template:
      "{{ x }}|{{ x|length }}|{{ x is none }}|{% for a in x %}{% endfor %}ok|{{ x ~ 'a' }}|" +
      "{{ x|trim }}|{{ x|list }}|{{ x|string }}|{{ x|default('d') }}|{{ x|items|list }}|" +
      "{{ 'a' in x }}|{{ none.attr }}|{{ none['k'] }}|{{ 1.attr }}|{{ {}.missing }}",
  },
  {
    name: "string literal escapes",
    template: "{{ '\\u00e9\\x41\\n\\t' }}|{{ \"q\\\"d\" }}|{{ 'it\\'s' }}",
  },
  { name: "raise_exception", template: "{{ raise_exception('boom') }}" },
  { name: "undefined attribute of undefined", template: "{{ x.y.z }}" },
  { name: "unsafe list method", template: "{{ [1].append(2) }}" },
  { name: "unsafe dict method", template: "{% set d = {} %}{{ d.update({'a': 1}) }}" },
  { name: "str plus int", template: "{{ 'a' + 1 }}" },
  { name: "division by zero", template: "{{ 1 / 0 }}" },
  { name: "unknown filter at top level", template: "ok{{ x|from_json }}" },
  {
    name: "unknown filter in an untaken if",
    template: "{% if false %}{{ x|from_json }}{% endif %}ok",
  },
  {
    name: "unknown filter in a loop inside an if",
    template: "{% if false %}{% for a in [1] %}{{ a|nofilter }}{% endfor %}{% endif %}ok",
  },
  { name: "unknown test at top level", template: "{{ 1 is nosuchtest }}" },
  {
    name: "unknown test in an untaken if",
    template: "{% if false %}{{ 1 is nosuchtest }}{% endif %}ok",
  },
  { name: "too many values to unpack", template: "{% for a, b in [[1, 2, 3]] %}{% endfor %}" },
  { name: "iterate none", template: "{% for a in none %}{% endfor %}" },
  { name: "syntax error", template: "{% if %}" },
  { name: "unclosed block", template: "{% for x in y %}" },
  {
    name: "message shapes",
    template: "{% for m in messages %}{{ m.role }}:{{ m.content }}:{{ m.tool_calls is defined }}:" +
      "{{ m['tool_calls'][0].function.arguments if m.tool_calls else '' }};{% endfor %}",
    context: {
      messages: [
        { role: "user", content: "hi" },
        {
          role: "assistant",
          content: "",
          tool_calls: [{ type: "function", function: { name: "f", arguments: { a: [1, "x"] } } }],
        },
      ],
    },
  },
];
