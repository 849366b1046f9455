// `--profile` for every process of a multi-node sandbox: Node refuses --cpu-prof in
// NODE_OPTIONS, so the bench preloads this module (NODE_OPTIONS=--import …) into the sandbox
// and, through the environment, into the nodes it spawns. It profiles the main thread with the
// inspector and writes a .cpuprofile when the process exits (as --cpu-prof does).
import { Session } from "node:inspector";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.env["COCO_BENCH_CPU_PROFILE_DIR"];
if (dir !== undefined && dir !== "") {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  session.post("Profiler.start");
  process.once("exit", () => {
    // A session on the process's own thread answers synchronously, so this works in 'exit'.
    session.post("Profiler.stop", (error, result) => {
      if (error !== null || result === undefined) return;
      const name = `CPU.${new Date().toISOString().replace(/[:.]/g, "")}.${process.pid}.cpuprofile`;
      writeFileSync(join(dir, name), JSON.stringify(result.profile));
    });
  });
}
