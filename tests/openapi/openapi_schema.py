"""Loads docs/openapi.yaml and validates JSON values against its schemas: the subset of JSON
Schema 2020-12 the document uses (type, enum, const, properties, required,
additionalProperties, items, minItems, maxItems, minimum, maximum, exclusiveMinimum,
exclusiveMaximum, minLength, maxLength, oneOf, anyOf, $ref). Standard library only; YAML is read
with PyYAML when present, else with the js-yaml of tools/openapi-lint."""

import json
import os
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SPEC_PATH = os.path.join(ROOT, "docs", "openapi.yaml")


def load_spec(path=SPEC_PATH):
    try:
        import yaml  # optional
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except ImportError:
        pass
    js_yaml = os.path.join(ROOT, "tools", "openapi-lint", "node_modules", "js-yaml")
    script = ("const y=require(process.argv[1]);const fs=require('fs');"
              "process.stdout.write(JSON.stringify(y.load(fs.readFileSync(process.argv[2],'utf8'))))")
    out = subprocess.run(["node", "-e", script, js_yaml, path], check=True, capture_output=True)
    return json.loads(out.stdout)


class Validator:
    def __init__(self, spec):
        self.spec = spec

    def resolve(self, schema):
        while isinstance(schema, dict) and "$ref" in schema:
            node = self.spec
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        return schema

    def errors(self, value, schema, where="$"):
        schema = self.resolve(schema)
        out = []
        if schema is True or schema == {}:
            return out
        if "oneOf" in schema:
            matches = sum(1 for s in schema["oneOf"] if not self.errors(value, s, where))
            if matches != 1:
                out.append(f"{where}: matches {matches} of oneOf, not exactly 1")
        if "anyOf" in schema:
            if not any(not self.errors(value, s, where) for s in schema["anyOf"]):
                out.append(f"{where}: matches none of anyOf")
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(self._is(value, t) for t in types):
                return out + [f"{where}: {json.dumps(value)[:60]} is not {types}"]
        if "const" in schema and value != schema["const"]:
            out.append(f"{where}: {value!r} is not {schema['const']!r}")
        if "enum" in schema and value not in schema["enum"]:
            out.append(f"{where}: {value!r} not in {schema['enum']}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{where}: {value} < {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{where}: {value} > {schema['maximum']}")
            if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
                out.append(f"{where}: {value} <= {schema['exclusiveMinimum']}")
            if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
                out.append(f"{where}: {value} >= {schema['exclusiveMaximum']}")
        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{where}: shorter than {schema['minLength']}")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                out.append(f"{where}: longer than {schema['maxLength']}")
        if isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                out.append(f"{where}: fewer than {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                out.append(f"{where}: more than {schema['maxItems']} items")
            if "items" in schema:
                for i, item in enumerate(value):
                    out += self.errors(item, schema["items"], f"{where}[{i}]")
        if isinstance(value, dict):
            props = schema.get("properties", {})
            for name in schema.get("required", []):
                if name not in value:
                    out.append(f"{where}: missing {name}")
            extra = schema.get("additionalProperties", True)
            for name, item in value.items():
                if name in props:
                    out += self.errors(item, props[name], f"{where}.{name}")
                elif extra is False:
                    out.append(f"{where}: unexpected property {name}")
                elif isinstance(extra, dict):
                    out += self.errors(item, extra, f"{where}.{name}")
        return out

    @staticmethod
    def _is(value, t):
        return {
            "null": value is None,
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool)
            or isinstance(value, float) and value.is_integer(),
            "number": isinstance(value, (int, float)) and not isinstance(value, bool),
            "string": isinstance(value, str),
            "array": isinstance(value, list),
            "object": isinstance(value, dict),
        }[t]

    def response_schema(self, path, method, status, media="application/json"):
        operation = self.spec["paths"][path][method]
        response = self.resolve(operation["responses"][str(status)])
        return response["content"][media]["schema"]

    def check_response(self, path, method, status, body):
        return self.errors(body, self.response_schema(path, method, status))
