// The apps a `coco` node runs: the built-in logging app, the EVM app when enabled
// (`coco.evm`; its chain comes from governance), and whatever JS app (CCF bundle) the consortium deploys with set_js_app.
// Composed here, above the node layer.
import { installLoggingApp } from "../apps/logging/index.js";
import { installJsApp } from "../apps/js/index.js";
import { installEvmApp } from "../apps/evm/index.js";
import type { ResolvedConfig } from "../node/config.js";
import type { StartOptions } from "../node/node.js";

export function appOptions(config: ResolvedConfig): Pick<StartOptions, "installApps" | "appRouter"> {
  return {
    installApps: (registry, context) => {
      installLoggingApp(registry, { coseReceipt: (view, seqno) => context.coseReceipt(view, seqno) });
      if (config.evm) {
        installEvmApp(registry, {
          committedSeqno: () => context.committedSeqno(),
          viewForSeqno: (seqno) => context.viewForSeqno(seqno),
          ...config.evm,
        });
      }
    },
    appRouter: (store, logger, consensus) => installJsApp({
      store,
      logger,
      consensus,
      runtimeOptions: { timeLimitMs: config.jsTimeLimitMs, memoryLimitMiB: config.jsMemoryLimitMiB },
      batchRequests: true,
    }),
  };
}
