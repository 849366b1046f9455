// Public face of the client SDK. Receipt verification works offline, from the service
// certificate alone.
export * from "./receipt.js";
export * from "./gov.js";
export * from "./open-service.js";
export * from "./recovery.js";
export * from "./cose-receipt.js";
