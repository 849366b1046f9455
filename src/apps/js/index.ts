// Public face of JS apps: CCF-format bundles deployed by governance (`set_js_app`), served
// from a registry of their own under `/app`.
import { JsApp, type JsAppDeps } from "./js-app.js";

export { JsApp, APP_PATH_PREFIX, JS_EXCEPTION_MESSAGE, type JsAppObserver, type JsAppDeps, type JsAppRuntimeOptions, type JsAppConsensus, type JsAppLogger } from "./js-app.js";
export { JS_APP_TABLES, readDeployedBundle, type DeployedBundle, type JsEndpointProperties, type JsEndpointMode } from "./bundle.js";

/** Creates the node's JS app and has it follow the bundle tables of `deps.store`. */
export function installJsApp(deps: JsAppDeps): JsApp {
  const app = new JsApp(deps);
  app.watch(deps.store);
  return app;
}
