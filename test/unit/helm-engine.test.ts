// The chart renderer against Helm's own engine tests (pkg/engine/engine_test.go), adapted, plus what the chart uses.
import { describe, expect, it } from "vitest";
import { type ChartFiles, mergeValues, renderChart } from "../../helm/engine.ts";

const chart = (templates: Record<string, string>, values: Record<string, unknown> = {}, extra: Partial<ChartFiles> = {}): ChartFiles => ({
  metadata: { name: "moby", version: "1.2.3" },
  values,
  templates,
  ...extra,
});
const renderError = (c: ChartFiles, values?: Record<string, unknown>) => {
  try {
    renderChart(c, values ? { values } : {});
  } catch (err) {
    return (err as Error).message;
  }
  return "no error";
};

describe("Helm's engine tests", () => {
  it("TestRender: functions, values merged over the chart's, <no value> written as nothing, toJson with sorted keys", () => {
    const out = renderChart(
      chart(
        {
          test1: "{{.Values.outer | title }} {{.Values.inner | title}}",
          test2: "{{.Values.global.callme | lower }}",
          test3: "{{.noValue}}",
          test4: "{{toJson .Values}}",
        },
        { outer: "DEFAULT", inner: "DEFAULT" },
      ),
      { values: { outer: "spouter", inner: "inn", global: { callme: "Ishmael" } } },
    );
    expect(Object.fromEntries(out)).toEqual({
      "moby/templates/test1": "Spouter Inn",
      "moby/templates/test2": "ishmael",
      "moby/templates/test3": "",
      "moby/templates/test4": `{"global":{"callme":"Ishmael"},"inner":"inn","outer":"spouter"}`,
    });
  });

  it("TestRenderRefsOrdering and TestRenderInternals: include through tpl, template with a dict as dot", () => {
    const out = renderChart(
      chart({
        "_helpers.tpl": `{{- define "test" -}}parent value{{- end -}}{{ define "two" }}Goodbye {{upper .Value}}{{ end }}`,
        "test.yaml": `{{ tpl "{{ include \\"test\\" . }}" . }}`,
        three: `{{template "two" dict "Value" "three"}}`,
      }),
    );
    expect(out.get("moby/templates/test.yaml")).toBe("parent value");
    expect(out.get("moby/templates/three")).toBe("Goodbye THREE");
    expect(out.has("moby/templates/_helpers.tpl")).toBe(false);
  });

  it("TestParseErrors, TestExecErrors, TestFailErrors: the messages say what is wrong", () => {
    expect(renderError(chart({ undefined_function: "{{foo}}" }))).toContain('function "foo" not defined');
    expect(renderError(chart({ missing_required: `{{required "foo is required" .Values.foo}}` }))).toContain("foo is required");
    expect(renderError(chart({ colons: `{{required ":this: message: has many: colons:" .Values.foo}}` }))).toContain(":this: message: has many: colons:");
    expect(
      renderError(
        chart({
          issue6044: `{{ $someEmptyValue := "" }}\n{{ $myvar := "abc" }}\n{{- required (printf "%s: something is missing" $myvar) $someEmptyValue | repeat 0 }}`,
        }),
      ),
    ).toContain("abc: something is missing");
    expect(renderError(chart({ issue9981: `{{fail "something is wrong\\nlinebreak"}}` }))).toContain("something is wrong\nlinebreak");
    expect(renderError(chart({ failtpl: `All your base are belong to us{{ fail "This is an error" }}` }))).toContain("This is an error");
  });
});

describe("what the chart relies on", () => {
  it("merges values as Helm does: maps key by key, lists and scalars replaced, null deletes", () => {
    expect(mergeValues({ a: { b: 1, c: 2 }, l: [1, 2], s: "x", gone: 1 }, { a: { c: 3 }, l: [9], gone: null })).toEqual({ a: { b: 1, c: 3 }, l: [9], s: "x" });
  });

  it("toYaml with sorted keys under nindent, default, quote, Release and Chart", () => {
    const out = renderChart(
      chart(
        {
          "ds.yaml": [
            "name: {{ .Release.Name }}-{{ .Chart.Name }}",
            "namespace: {{ .Release.Namespace | quote }}",
            "image: {{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.Version }}",
            "resources: {{- toYaml .Values.resources | nindent 2 }}",
            "{{- if .Values.tolerateAll }}",
            "tolerations: [{operator: Exists}]",
            "{{- end }}",
            "",
          ].join("\n"),
        },
        { image: { repository: "ambit/agent", tag: "" }, resources: { requests: { memory: "64Mi", cpu: "50m" } }, tolerateAll: true },
      ),
      { release: { name: "ambit", namespace: "ambit-system" } },
    );
    expect(out.get("moby/templates/ds.yaml")).toBe(
      [
        "name: ambit-moby",
        'namespace: "ambit-system"',
        "image: ambit/agent:1.2.3",
        "resources:",
        "  requests:",
        "    cpu: 50m",
        "    memory: 64Mi",
        "tolerations: [{operator: Exists}]",
        "",
      ].join("\n"),
    );
  });
});

describe(".Files (Helm's pkg/engine/files_test.go, through templates)", () => {
  // Helm's test files.
  const files = {
    "ship/captain.txt": "The Captain",
    "ship/stowaway.txt": "Legatt",
    "story/name.txt": "The Secret Sharer",
    "story/author.txt": "Joseph Conrad",
    "multiline/test.txt": "bar\nfoo\n",
  };
  const render = (template: string) => renderChart(chart({ t: template }, {}, { files })).get("moby/templates/t");

  it("TestNewFiles and TestGetNonExistingFile: Get and GetBytes return a file's content, a missing file is empty", () => {
    expect(render(`{{ .Files.Get "ship/captain.txt" }}|{{ .Files.Get "story/author.txt" }}`)).toBe("The Captain|Joseph Conrad");
    expect(render(`{{ .Files.GetBytes "ship/stowaway.txt" | toString }}`)).toBe("Legatt");
    // Go prints a []byte as its numbers.
    expect(render(`{{ .Files.GetBytes "ship/stowaway.txt" }}`)).toBe("[76 101 103 97 116 116]");
    expect(render(`[{{ .Files.Get "no_such_file.txt" }}]`)).toBe("[]");
  });

  it("a method takes the piped value as its last argument, and is reached through $ and a parenthesized pipeline too", () => {
    expect(render(`{{ "ship/captain.txt" | .Files.Get | upper }}`)).toBe("THE CAPTAIN");
    expect(render(`{{ with "elsewhere" }}{{ $.Files.Get "story/name.txt" }}{{ end }}`)).toBe("The Secret Sharer");
    expect(render(`{{ $f := .Files }}{{ $f.Get "story/name.txt" }}`)).toBe("The Secret Sharer");
    expect(render(`{{ (.Files).Get "story/name.txt" }}`)).toBe("The Secret Sharer");
  });

  it("TestLines: a file's lines without the final newline; a missing file has none", () => {
    expect(render(`{{ range .Files.Lines "multiline/test.txt" }}<{{ . }}>{{ end }}`)).toBe("<bar><foo>");
    expect(render(`{{ len (.Files.Lines "no_such_file.txt") }}`)).toBe("0");
  });

  it("wrong arguments, unknown methods and the methods not implemented are errors, as Go's and never a guess", () => {
    expect(renderError(chart({ t: `{{ .Files.Get }}` }, {}, { files }))).toContain("wrong number of args for Get: want 1 got 0");
    expect(renderError(chart({ t: `{{ .Files.Get "a" "b" }}` }, {}, { files }))).toContain("wrong number of args for Get: want 1 got 2");
    expect(renderError(chart({ t: `{{ .Files.Nope "a" }}` }, {}, { files }))).toContain("can't evaluate field Nope in type engine.files");
    expect(renderError(chart({ t: `{{ .Files.Glob "ship/**" }}` }, {}, { files }))).toContain(".Files.Glob is not supported by this renderer");
    // A field that is not a method still takes no arguments.
    expect(renderError(chart({ t: `{{ .Values.x "a" }}` }, { x: { y: 1 } }))).toContain("can't give argument to non-function");
  });
});

describe("values.schema.json, checked as Helm's ValidateAgainstSchema does before rendering", () => {
  const schema = {
    $schema: "http://json-schema.org/draft-07/schema#",
    type: "object",
    additionalProperties: false,
    required: ["image"],
    properties: {
      image: {
        type: "object",
        additionalProperties: false,
        properties: { pullPolicy: { enum: ["Always", "IfNotPresent", "Never"] }, tag: { type: "string" } },
      },
      replicas: { type: "integer", minimum: 1 },
      ports: { type: "array", items: { type: "integer", maximum: 65535 } },
    },
  };
  const withSchema = (s: unknown = schema) => chart({ t: "{{ .Values.replicas }}" }, { image: { pullPolicy: "IfNotPresent" }, replicas: 2 }, { schema: s });
  const refusal = (values: Record<string, unknown>, s?: unknown) => {
    try {
      renderChart(withSchema(s), { values });
    } catch (err) {
      return err as Error & { code?: string };
    }
    throw new Error("the values were accepted");
  };

  it("renders when the merged values meet the schema: the chart's defaults count, as in Helm", () => {
    expect(renderChart(withSchema(), { values: { replicas: 3, image: { tag: "1.0" } } }).get("moby/templates/t")).toBe("3");
  });

  it("refuses bad values with every problem on its own line, named by its key path, in Helm's heading", () => {
    const err = refusal({ replicas: -1, image: { pullPolicy: "Sometimes", tga: "x" }, ports: [80, 70000], extra: true });
    expect(err.code).toBe("AMBIT_E_VALUES_INVALID");
    expect(err.message.split("\n")).toEqual([
      "values don't meet the specifications of the schema(s) in the following chart(s):",
      "moby:",
      "- extra: unknown key (the top level takes image, replicas, ports)",
      "- image.tga: unknown key (image takes pullPolicy, tag)",
      '- image.pullPolicy: must be one of Always, IfNotPresent, Never, not "Sometimes"',
      "- replicas: must be >= 1, not -1",
      "- ports[1]: must be <= 65535, not 70000",
    ]);
  });

  it("names wrong types and missing required keys (null deletes a default, as in Helm)", () => {
    expect(refusal({ replicas: "3" }).message).toContain('- replicas: must be integer, not string ("3")');
    expect(refusal({ image: null }).message).toContain("- image: is required");
  });

  it("refuses a schema of another draft than draft-07, an unknown format and a broken schema, as the chart's mistake", () => {
    const draft2020 = refusal({}, { ...schema, $schema: "https://json-schema.org/draft/2020-12/schema" });
    expect(draft2020.code).toBe("AMBIT_E_VALUES_SCHEMA");
    expect(draft2020.message).toContain("only draft-07");
    expect(refusal({}, { type: "object", properties: { replicas: { type: "string", format: "hostname" } } }).message).toContain('unknown format "hostname"');
    const broken = refusal({}, { type: "object", properties: { replicas: { type: "integr" } } });
    expect([broken.code, broken.message]).toEqual(["AMBIT_E_VALUES_SCHEMA", expect.stringContaining("moby/values.schema.json is not a valid JSON Schema")]);
  });
});
