// See package.json: cbor-x catches this and falls back to its JavaScript decoder.
throw new Error("cbor-extract native acceleration is not installed");
