export * from "./errors.js";
export * from "./http-server.js";
export * from "./endpoints.js";
export * from "./auth.js";
export * from "./openapi.js";
