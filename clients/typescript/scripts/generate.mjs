// Generates src/generated/openapi.ts from the bridge's api/openapi.yaml with
// openapi-typescript. A .ts, not a .d.ts: skipLibCheck skips declaration
// files, so a type the spec made wrong (a $ref into the middle of a
// component) would pass unnoticed; as .ts it is type-checked with src/. With --check it writes nothing and fails when the
// committed file differs from what the spec generates (CI runs that).
import { readFile, writeFile } from "node:fs/promises";
import openapiTS, { astToString } from "openapi-typescript";

const spec = new URL("../../../api/openapi.yaml", import.meta.url);
const target = new URL("../src/generated/openapi.ts", import.meta.url);
const header = `/**
 * Generated from api/openapi.yaml by \`npm run generate\` (openapi-typescript).
 * Do not edit: change the spec and regenerate; \`npm run check:generated\`
 * fails when this file is out of date.
 */

`;

const ast = await openapiTS(spec, { silent: true });
const generated = header + astToString(ast);

if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = await readFile(target, "utf8");
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  if (committed !== generated) {
    console.error("src/generated/openapi.ts is out of date with api/openapi.yaml: run `npm run generate` in clients/typescript and commit the result.");
    process.exitCode = 1;
  } else {
    console.log("src/generated/openapi.ts matches api/openapi.yaml");
  }
} else {
  await writeFile(target, generated);
  console.log("wrote src/generated/openapi.ts");
}
