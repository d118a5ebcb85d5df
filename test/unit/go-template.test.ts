// Ambit's Go text/template against Go's own execution tests, adapted to the JSON-like values Helm templates get.
import { describe, expect, it } from "vitest";
import { BUILTINS, type TemplateFunc, TemplateError, execute, parseTemplate } from "../../helm/template/index.ts";

// Test vectors from Go's src/text/template/exec_test.go (execTests, golang/go, BSD licence): the cases whose
// data can be JSON (maps, slices, strings, numbers, booleans). Cases on Go methods, structs, pointers, channels,
// complex numbers and typed maps have no JSON counterpart and are left out. Go's int is a bigint here, float64 a
// number, so `tVal`'s ints are written 17n.
const tVal = {
  True: true,
  I: 17n,
  U16: 16n,
  X: "x",
  FloatZero: 0,
  U: { V: "v" },
  SI: [3n, 4n, 5n],
  SIEmpty: [],
  SB: [true, false],
  MSI: { one: 1n, two: 2n, three: 3n },
  MSIone: { one: 1n },
  MSIEmpty: {},
  MXI: { one: 1n },
  SMSI: [
    { one: 1n, two: 2n },
    { eleven: 11n, twelve: 12n },
  ],
  Empty0: null,
  Empty1: 3n,
  Empty2: "empty2",
  Empty3: [7n, 8n],
  Empty4: { V: "UinEmpty" },
  PS: "a string",
};

const funcs: Record<string, TemplateFunc> = {
  ...BUILTINS,
  add: (...args) => args.reduce<bigint>((sum, a) => sum + (a as bigint), 0n),
  echo: (a) => a,
  makemap: (...args) => Object.fromEntries(Array.from({ length: args.length / 2 }, (_, i) => [args[2 * i], args[2 * i + 1]])),
  mapOfThree: () => ({ three: 3n }),
  oneArg: (a) => {
    if (typeof a !== "string") throw new Error("wrong type for value; expected string");
    return `oneArg=${a}`;
  },
  twoArgs: (a, b) => {
    if (typeof a !== "string" || typeof b !== "string") throw new Error("wrong type for value; expected string");
    return `twoArgs=${a}${b}`;
  },
  zeroArgs: () => "zeroArgs",
};

type Case = [name: string, input: string, output: string, data: unknown, ok: boolean];

const execTests: Case[] = [
  ["empty", "", "", null, true],
  ["text", "some text", "some text", null, true],
  ["nil action", "{{nil}}", "", null, false],
  [".X", "-{{.X}}-", "-x-", tVal, true],
  [".U.V", "-{{.U.V}}-", "-v-", tVal, true],
  ["map .one", "{{.MSI.one}}", "1", tVal, true],
  ["map .two", "{{.MSI.two}}", "2", tVal, true],
  ["map .NO", "{{.MSI.NO}}", "<no value>", tVal, true],
  ["map .one interface", "{{.MXI.one}}", "1", tVal, true],
  ["map .WRONG args", "{{.MSI.one 1}}", "", tVal, false],
  ["dot int", "<{{.}}>", "<13>", 13n, true],
  ["dot float", "<{{.}}>", "<15.1>", 15.1, true],
  ["dot bool", "<{{.}}>", "<true>", true, true],
  ["dot string", "<{{.}}>", "<hello>", "hello", true],
  ["dot slice", "<{{.}}>", "<[-1 -2 -3]>", [-1n, -2n, -3n], true],
  ["dot map", "<{{.}}>", "<map[two:22]>", { two: 22n }, true],
  ["$ int", "{{$}}", "123", 123n, true],
  ["$.I", "{{$.I}}", "17", tVal, true],
  ["$.U.V", "{{$.U.V}}", "v", tVal, true],
  ["declare in action", "{{$x := $.U.V}}{{$x}}", "v", tVal, true],
  ["empty nil", "{{.Empty0}}", "<no value>", tVal, true],
  ["empty with int", "{{.Empty1}}", "3", tVal, true],
  ["empty with string", "{{.Empty2}}", "empty2", tVal, true],
  ["empty with slice", "{{.Empty3}}", "[7 8]", tVal, true],
  ["empty with struct, field", "{{.Empty4.V}}", "UinEmpty", tVal, true],
  ["parens in pipeline", "{{printf `%d %d %d` (1) (2 | add 3) (add 4 (add 5 6))}}", "1 5 15", tVal, true],
  ["parens: $ in paren", "{{($).X}}", "x", tVal, true],
  ["parens: $ in paren in pipe", "{{($ | echo).X}}", "x", tVal, true],
  ["parens: spaces and args", `{{(makemap "up" "down" "left" "right").left}}`, "right", tVal, true],
  ["if true", "{{if true}}TRUE{{end}}", "TRUE", tVal, true],
  ["if false", "{{if false}}TRUE{{else}}FALSE{{end}}", "FALSE", tVal, true],
  ["if nil", "{{if nil}}TRUE{{end}}", "", tVal, false],
  ["if 1", "{{if 1}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", tVal, true],
  ["if 0", "{{if 0}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", tVal, true],
  ["if 1.5", "{{if 1.5}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO", tVal, true],
  ["if 0.0", "{{if .FloatZero}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", tVal, true],
  ["if emptystring", "{{if ``}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["if string", "{{if `notempty`}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", tVal, true],
  ["if emptyslice", "{{if .SIEmpty}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["if slice", "{{if .SI}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", tVal, true],
  ["if emptymap", "{{if .MSIEmpty}}NON-EMPTY{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["if map", "{{if .MSI}}NON-EMPTY{{else}}EMPTY{{end}}", "NON-EMPTY", tVal, true],
  ["if map unset", "{{if .MXI.none}}NON-ZERO{{else}}ZERO{{end}}", "ZERO", tVal, true],
  ["if map not unset", "{{if not .MXI.none}}ZERO{{else}}NON-ZERO{{end}}", "ZERO", tVal, true],
  ["if $x with $y int", "{{if $x := true}}{{with $y := .I}}{{$x}},{{$y}}{{end}}{{end}}", "true,17", tVal, true],
  ["if $x with $x int", "{{if $x := true}}{{with $x := .I}}{{$x}},{{end}}{{$x}}{{end}}", "17,true", tVal, true],
  ["if else if", "{{if false}}FALSE{{else if true}}TRUE{{end}}", "TRUE", tVal, true],
  ["if else chain", "{{if eq 1 3}}1{{else if eq 2 3}}2{{else if eq 3 3}}3{{end}}", "3", tVal, true],
  ["print", `{{print "hello, print"}}`, "hello, print", tVal, true],
  ["print 123", "{{print 1 2 3}}", "1 2 3", tVal, true],
  ["print nil", "{{print nil}}", "<nil>", tVal, true],
  ["println", "{{println 1 2 3}}", "1 2 3\n", tVal, true],
  ["printf int", `{{printf "%04x" 127}}`, "007f", tVal, true],
  ["printf float", `{{printf "%g" 3.5}}`, "3.5", tVal, true],
  ["printf string", `{{printf "%s" "hello"}}`, "hello", tVal, true],
  ["printf function", `{{printf "%#q" zeroArgs}}`, "`zeroArgs`", tVal, true],
  ["printf field", `{{printf "%s" .U.V}}`, "v", tVal, true],
  ["printf dot", `{{with .I}}{{printf "%d" .}}{{end}}`, "17", tVal, true],
  ["printf var", `{{with $x := .I}}{{printf "%d" $x}}{{end}}`, "17", tVal, true],
  ["html", `{{html "<script>alert(\\"XSS\\");</script>"}}`, "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;", null, true],
  ["html pipeline", `{{printf "<script>alert(\\"XSS\\");</script>" | html}}`, "&lt;script&gt;alert(&#34;XSS&#34;);&lt;/script&gt;", null, true],
  ["html .PS", "{{html .PS}}", "a string", tVal, true],
  ["js", "{{js .}}", "It\\'d be nice.", "It'd be nice.", true],
  ["urlquery", `{{"http://www.example.org/"|urlquery}}`, "http%3A%2F%2Fwww.example.org%2F", null, true],
  ["not", "{{not true}} {{not false}}", "false true", null, true],
  ["and", "{{and false 0}} {{and 1 0}} {{and 0 true}} {{and 1 1}}", "false 0 0 1", null, true],
  ["or", "{{or 0 0}} {{or 1 0}} {{or 0 true}} {{or 1 1}}", "0 1 true 1", null, true],
  ["boolean if", "{{if and true 1 `hi`}}TRUE{{else}}FALSE{{end}}", "TRUE", tVal, true],
  ["boolean if not", "{{if and true 1 `hi` | not}}TRUE{{else}}FALSE{{end}}", "FALSE", null, true],
  ["slice[0]", "{{index .SI 0}}", "3", tVal, true],
  ["slice[1]", "{{index .SI 1}}", "4", tVal, true],
  ["slice[HUGE]", "{{index .SI 10}}", "", tVal, false],
  ["slice[WRONG]", "{{index .SI `hello`}}", "", tVal, false],
  ["slice[nil]", "{{index .SI nil}}", "", tVal, false],
  ["map[one]", "{{index .MSI `one`}}", "1", tVal, true],
  ["map[two]", "{{index .MSI `two`}}", "2", tVal, true],
  ["map[nil]", "{{index .MSI nil}}", "", tVal, false],
  ["map[WRONG]", "{{index .MSI 10}}", "", tVal, false],
  ["double index", "{{index .SMSI 1 `eleven`}}", "11", tVal, true],
  ["nil[1]", "{{index nil 1}}", "", tVal, false],
  ["len slice", "{{len .SI}}", "3", tVal, true],
  ["len map", "{{len .MSI }}", "3", tVal, true],
  ["len of int", "{{len 3}}", "", tVal, false],
  ["len of nothing", "{{len .Empty0}}", "", tVal, false],
  ["with true", "{{with true}}{{.}}{{end}}", "true", tVal, true],
  ["with false", "{{with false}}{{.}}{{else}}FALSE{{end}}", "FALSE", tVal, true],
  ["with 1", "{{with 1}}{{.}}{{else}}ZERO{{end}}", "1", tVal, true],
  ["with 0", "{{with 0}}{{.}}{{else}}ZERO{{end}}", "ZERO", tVal, true],
  ["with 1.5", "{{with 1.5}}{{.}}{{else}}ZERO{{end}}", "1.5", tVal, true],
  ["with 0.0", "{{with .FloatZero}}{{.}}{{else}}ZERO{{end}}", "ZERO", tVal, true],
  ["with emptystring", "{{with ``}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["with string", "{{with `notempty`}}{{.}}{{else}}EMPTY{{end}}", "notempty", tVal, true],
  ["with emptyslice", "{{with .SIEmpty}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["with slice", "{{with .SI}}{{.}}{{else}}EMPTY{{end}}", "[3 4 5]", tVal, true],
  ["with emptymap", "{{with .MSIEmpty}}{{.}}{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["with map", "{{with .MSIone}}{{.}}{{else}}EMPTY{{end}}", "map[one:1]", tVal, true],
  ["with empty interface, struct field", "{{with .Empty4}}{{.V}}{{end}}", "UinEmpty", tVal, true],
  ["with $x int", "{{with $x := .I}}{{$x}}{{end}}", "17", tVal, true],
  ["with $x struct.U.V", "{{with $x := $}}{{$x.U.V}}{{end}}", "v", tVal, true],
  ["with variable and action", "{{with $x := $}}{{$y := $.U.V}}{{$y}}{{end}}", "v", tVal, true],
  ["range []int", "{{range .SI}}-{{.}}-{{end}}", "-3--4--5-", tVal, true],
  ["range empty no else", "{{range .SIEmpty}}-{{.}}-{{end}}", "", tVal, true],
  ["range []int else", "{{range .SI}}-{{.}}-{{else}}EMPTY{{end}}", "-3--4--5-", tVal, true],
  ["range empty else", "{{range .SIEmpty}}-{{.}}-{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["range []bool", "{{range .SB}}-{{.}}-{{end}}", "-true--false-", tVal, true],
  ["range map", "{{range .MSI}}-{{.}}-{{end}}", "-1--3--2-", tVal, true],
  ["range empty map no else", "{{range .MSIEmpty}}-{{.}}-{{end}}", "", tVal, true],
  ["range map else", "{{range .MSI}}-{{.}}-{{else}}EMPTY{{end}}", "-1--3--2-", tVal, true],
  ["range empty map else", "{{range .MSIEmpty}}-{{.}}-{{else}}EMPTY{{end}}", "EMPTY", tVal, true],
  ["range empty interface", "{{range .Empty3}}-{{.}}-{{else}}EMPTY{{end}}", "-7--8-", tVal, true],
  ["range empty nil", "{{range .Empty0}}-{{.}}-{{end}}", "", tVal, true],
  ["range $x SI", "{{range $x := .SI}}<{{$x}}>{{end}}", "<3><4><5>", tVal, true],
  ["range $x $y SI", "{{range $x, $y := .SI}}<{{$x}}={{$y}}>{{end}}", "<0=3><1=4><2=5>", tVal, true],
  ["range $x MSIone", "{{range $x := .MSIone}}<{{$x}}>{{end}}", "<1>", tVal, true],
  ["range $x $y MSIone", "{{range $x, $y := .MSIone}}<{{$x}}={{$y}}>{{end}}", "<one=1>", tVal, true],
  ["declare in range", "{{range $x := .SI}}<{{$foo:=$x}}{{$x}}>{{end}}", "<3><4><5>", tVal, true],
  ["or as if true", `{{or .SI "slice is empty"}}`, "[3 4 5]", tVal, true],
  ["or as if false", `{{or .SIEmpty "slice is empty"}}`, "slice is empty", tVal, true],
  ["bug7a", "{{3 2}}", "", tVal, false],
  ["bug7b", "{{$x := 1}}{{$x 2}}", "", tVal, false],
  ["bug7c", "{{$x := 1}}{{3 | $x}}", "", tVal, false],
  ["bug8a", "{{3|oneArg}}", "", tVal, false],
  ["bug9", "{{.cause}}", "neglect", { cause: "neglect" }, true],
  ["bug10", "{{mapOfThree.three}}-{{(mapOfThree).three}}", "3-3", 0n, true],
  ["bug14a", "{{(nil).True}}", "", tVal, false],
  ["bug14b", "{{$x := nil}}{{$x.anything}}", "", tVal, false],
  ["bug14c", `{{$x := (1.0)}}{{$y := ("hello")}}{{$x.anything}}{{$y.true}}`, "", tVal, false],
  ["bug16a", "{{true|printf}}", "", tVal, false],
  ["bug16b", "{{1|printf}}", "", tVal, false],
  ["bug16c", "{{1.1|printf}}", "", tVal, false],
  ["bug16f", '{{true|twoArgs "xxx"}}', "", tVal, false],
  ["bug16g", '{{"aaa" |twoArgs "bbb"}}', "twoArgs=bbbaaa", tVal, true],
  ["bug16h", "{{1|oneArg}}", "", tVal, false],
  ["bug16i", '{{"aaa"|oneArg}}', "oneArg=aaa", tVal, true],
  ["bug16k", '{{"aaa"|printf }}', "aaa", tVal, true],
];

function run(input: string, data: unknown): { ok: true; out: string } | { ok: false; err: unknown } {
  try {
    return { ok: true, out: execute(parseTemplate(input), data, funcs) };
  } catch (err) {
    return { ok: false, err };
  }
}

describe("Go text/template: Go's execution tests", () => {
  it.each(execTests)("%s", (_name, input, output, data, ok) => {
    const r = run(input, data);
    if (ok) expect(r).toEqual({ ok: true, out: output });
    else {
      expect(r.ok).toBe(false);
      expect((r as { err: unknown }).err).toBeInstanceOf(TemplateError);
    }
  });
});

describe("Go text/template: trim markers, comments, defines, numbers", () => {
  const render = (input: string, data: unknown = null) => execute(parseTemplate(input), data, funcs);

  it("trims the whitespace next to {{- and -}}, and leaves it without the marker", () => {
    expect(render("x \n {{- 3 }} \n y")).toBe("x3 \n y");
    expect(render("x {{ 3 -}} \n\t y")).toBe("x 3y");
    expect(render("a {{- /* a comment */ -}} b")).toBe("ab");
    expect(render("{{/* a comment */}}x")).toBe("x");
    expect(render("{{-3}}")).toBe("-3");
  });

  it("define, template and block, with the pipeline's value as dot", () => {
    expect(render(`{{define "T1"}}ONE{{end}}{{define "T2"}}TWO {{template "T1"}}{{end}}{{template "T2"}}`)).toBe("TWO ONE");
    expect(render(`{{define "x"}}<{{.}}>{{end}}{{template "x" .U.V}}`, tVal)).toBe("<v>");
    expect(render(`a{{block "b" .X}}[{{.}}]{{end}}c`, tVal)).toBe("a[x]c");
    expect(() => render(`{{template "missing"}}`)).toThrow(/no template "missing"/);
  });

  it("prints numbers as Go does: ints from literals, float64 from data (so 1000000 from values is 1e+06, as in Helm)", () => {
    expect(render("{{.}}", 1000000)).toBe("1e+06");
    expect(render("{{.}}", 123456)).toBe("123456");
    expect(render("{{.}}", 0.0001)).toBe("0.0001");
    expect(render("{{.}}", 0.00001)).toBe("1e-05");
    expect(render("{{1000000}}")).toBe("1000000");
    expect(render("{{0x1F}} {{1_000}}")).toBe("31 1000");
    // Go refuses comparisons across int and float64, which is why charts compare values with float literals.
    expect(() => render("{{eq . 1}}", 1)).toThrow(/incompatible types for comparison/);
    expect(render("{{eq . 1.0}}", 1)).toBe("true");
  });

  it("break and continue inside range; errors name what is wrong", () => {
    expect(render("{{range .}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", [1n, 2n, 3n, 4n])).toBe("12");
    expect(render("{{range .}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", [1n, 2n, 3n])).toBe("13");
    expect(() => parseTemplate("{{break}}")).toThrow(/outside \{\{range\}\}/);
    expect(() => parseTemplate("{{if true}}x")).toThrow(/has no \{\{end\}\}/);
    expect(() => parseTemplate("{{end}}")).toThrow(/unexpected \{\{end\}\}/);
    expect(() => render("{{.a.b}}", {})).toThrow(/nil pointer evaluating interface \{\}\.b/);
    expect(() => render("{{nofunc 1}}")).toThrow(/function "nofunc" not defined/);
  });
});
