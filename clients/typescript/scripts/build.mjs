// Builds the package: type declarations with tsc into dist/types/ (not
// committed), and one self-contained ES module with esbuild into
// dist/bridge-client.js (committed: the bridge serves it to its demo page).
// With --check it type-checks, builds the module in memory and fails when
// the committed dist/bridge-client.js differs (CI runs that).
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const bundlePath = new URL("../dist/bridge-client.js", import.meta.url);
const check = process.argv.includes("--check");

const banner = `// @openmeet/bridge-client, built from clients/typescript/src by \`npm run build\`.
// Do not edit: change the source and rebuild; \`npm run check:build\` fails
// when this file differs from the source's build.`;

function tsc(...args) {
  execFileSync(process.execPath, [fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url)), ...args], {
    cwd: root,
    stdio: "inherit",
  });
}

async function bundle() {
  const result = await esbuild.build({
    absWorkingDir: root,
    entryPoints: ["src/index.ts"],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    banner: { js: banner },
    write: false,
    outfile: "dist/bridge-client.js",
    logLevel: "warning",
  });
  return result.outputFiles[0].text;
}

if (check) {
  tsc("-p", "tsconfig.json", "--noEmit");
  const built = await bundle();
  let committed = "";
  try {
    committed = await readFile(bundlePath, "utf8");
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  if (committed !== built) {
    console.error("dist/bridge-client.js differs from the build of src/: run `npm run build` in clients/typescript and commit dist/bridge-client.js.");
    process.exitCode = 1;
  } else {
    console.log("dist/bridge-client.js matches the build of src/");
  }
} else {
  tsc("-p", "tsconfig.json");
  await writeFile(bundlePath, await bundle());
  console.log("wrote dist/bridge-client.js and dist/types/");
}
