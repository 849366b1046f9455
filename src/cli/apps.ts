// The apps a `coco` node runs: the built-in logging app, the EVM app when enabled
// (`coco.evm`; its chain comes from governance), and whatever JS app (CCF bundle) the consortium deploys with set_js_app.
// Composed here, above the node layer.
import { installLoggingApp } from "../apps/logging/index.js";
import { installJsApp } from "../apps/js/index.js";
import type { EndpointRegistry, Handler } from "../rpc/index.js";
import type { ResolvedConfig } from "../node/config.js";
import { NODE_ADDRESS_POLICY_DEFAULT } from "../node/evm-config.js";
import type { StartOptions } from "../node/node.js";

/** The EVM app (and its Ethereum libraries, ~0.5 s of module loading) is loaded only by a node that runs it. */
export async function appOptions(config: ResolvedConfig): Promise<Pick<StartOptions, "installApps" | "appRouter">> {
  const { installEvmApp } = config.evm ? await import("../apps/evm/index.js") : { installEvmApp: undefined };
  return {
    installApps: (registry, context) => {
      installLoggingApp(registry, { coseReceipt: (view, seqno) => context.coseReceipt(view, seqno) });
      if (config.evm && installEvmApp) {
        installEvmApp(timedRegistry(registry, (seconds) => context.observer.evmExecution(seconds)), {
          committedSeqno: () => context.committedSeqno(),
          viewForSeqno: (seqno) => context.viewForSeqno(seqno),
          node: context,
          ...config.evm,
          addressPolicy: config.evm.addressPolicy ?? NODE_ADDRESS_POLICY_DEFAULT,
        });
      }
    },
    appRouter: (store, logger, consensus, observer) => installJsApp({
      store,
      logger,
      consensus,
      observer,
      runtimeOptions: { timeLimitMs: config.jsTimeLimitMs, memoryLimitMiB: config.jsMemoryLimitMiB },
      batchRequests: true,
    }),
  };
}

/**
 * The registry as an app installing into it sees it, with each handler timed (the EVM app's
 * execution time metric): the time until its answer, including an eth_call's time in its worker.
 */
function timedRegistry(registry: EndpointRegistry, observe: (seconds: number) => void): EndpointRegistry {
  const view = Object.create(registry) as EndpointRegistry;
  view.install = (endpoint) => registry.install({ ...endpoint, handler: timed(endpoint.handler, observe) });
  return view;
}

function timed(handler: Handler, observe: (seconds: number) => void): Handler {
  return (ctx) => {
    const started = performance.now();
    const done = () => observe((performance.now() - started) / 1000);
    let result: ReturnType<Handler>;
    try {
      result = handler(ctx);
    } catch (error) {
      done();
      throw error;
    }
    if (result instanceof Promise) return result.finally(done);
    done();
    return result;
  };
}
