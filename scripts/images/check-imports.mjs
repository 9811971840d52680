// Loads every module of a program's closure (modules.txt from closure.mjs) except its entry point
// (which would start the program), from the image's /app: proves that the pruned node_modules and
// the copied modules are all the program needs. Run by the Dockerfile in each final stage:
//
//   node check-imports.mjs <modules.txt> <entry>
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [listFile, entry] = process.argv.slice(2);
const modules = readFileSync(listFile, 'utf8')
  .split('\n')
  .filter((m) => m && m !== entry);
for (const module of modules) {
  try {
    await import(pathToFileURL(`/app/dist/${module}`).href);
  } catch (error) {
    console.error(`check-imports.mjs: dist/${module} does not load: ${error.message}`);
    process.exit(1);
  }
}
console.log(`check-imports.mjs: ${modules.length} modules of ${entry}'s closure load`);
process.exit(0);
