// Coco's default constitution, part 1 of 4: the governance actions. The node concatenates
// actions.js, validate.js, resolve.js and apply.js into one ES module, so this file only
// declares top-level helpers and the `actions` map; the three exports live in the others.
// Action names, arguments, KV tables and value encodings are CCF's, so CCF proposals, ballots
// and tooling work unchanged. Every table written here is public (in the ledger in plaintext).

// ---------------------------------------------------------------------------------------------
// Argument checks. Each throws an Error naming the offending field, e.g. "args.cert must be ...".

function describeType(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function isMissing(value) {
  return value === undefined || value === null;
}

function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function requireString(value, field) {
  if (typeof value !== "string") throw new Error(`${field} must be a string, not ${describeType(value)}`);
}

function requireNonEmptyString(value, field) {
  requireString(value, field);
  if (value.length === 0) throw new Error(`${field} must not be empty`);
}

function requireObject(value, field) {
  if (!isPlainObject(value)) throw new Error(`${field} must be an object, not ${describeType(value)}`);
}

function requireArray(value, field) {
  if (!Array.isArray(value)) throw new Error(`${field} must be an array, not ${describeType(value)}`);
}

function requireBoolean(value, field) {
  if (typeof value !== "boolean") throw new Error(`${field} must be a boolean, not ${describeType(value)}`);
}

function requireInteger(value, field, min, max) {
  if (!Number.isInteger(value)) throw new Error(`${field} must be an integer, not ${describeType(value)}`);
  if (min !== undefined && value < min) throw new Error(`${field} must be at least ${min}, got ${value}`);
  if (max !== undefined && value > max) throw new Error(`${field} must be at most ${max}, got ${value}`);
}

function requireOneOf(value, allowed, field) {
  if (!allowed.includes(value)) {
    throw new Error(`${field} must be one of ${allowed.map((a) => JSON.stringify(a)).join(", ")}, got ${JSON.stringify(value)}`);
  }
}

/** Runs `check(value, field)` unless the value is absent (undefined or null). */
function optional(check, value, field, ...rest) {
  if (!isMissing(value)) check(value, field, ...rest);
}

const HEX_PATTERN = /^[0-9a-fA-F]+$/;

function requireHex(value, field) {
  requireNonEmptyString(value, field);
  if (!HEX_PATTERN.test(value) || value.length % 2 !== 0) {
    throw new Error(`${field} must be an even-length hexadecimal string`);
  }
}

/** Member, user and node ids are the lowercase or uppercase hex of a SHA-256 digest. */
function requireEntityId(value, field) {
  requireString(value, field);
  if (value.length !== 64 || !HEX_PATTERN.test(value)) {
    throw new Error(`${field} must be 64 hexadecimal characters (a SHA-256 digest), got ${JSON.stringify(value)}`);
  }
}

function requireCertBundle(value, field) {
  requireString(value, field);
  if (!ccf.isValidX509CertBundle(value)) {
    throw new Error(`${field} must be an X.509 certificate (or bundle) in PEM format`);
  }
}

function requirePublicKeyPem(value, field) {
  requireString(value, field);
  if (!/-----BEGIN (RSA )?PUBLIC KEY-----/.test(value)) throw new Error(`${field} must be a public key in PEM format`);
}

function requireArgsObject(args) {
  if (!isPlainObject(args)) throw new Error(`args must be an object, not ${describeType(args)}`);
}

/** For actions that take nothing: CCF sends no args; an empty object is tolerated. */
function requireNoArgs(args) {
  if (isMissing(args)) return;
  if (isPlainObject(args) && Object.keys(args).length === 0) return;
  throw new Error(`this action takes no arguments, got ${JSON.stringify(args)}`);
}

function requireJwks(jwks, field) {
  requireObject(jwks, field);
  requireArray(jwks.keys, `${field}.keys`);
  jwks.keys.forEach((jwk, i) => {
    const at = `${field}.keys[${i}]`;
    requireObject(jwk, at);
    requireString(jwk.kid, `${at}.kid`);
    requireString(jwk.kty, `${at}.kty`);
    if (!isMissing(jwk.x5c)) {
      requireArray(jwk.x5c, `${at}.x5c`);
      if (jwk.x5c.length === 0) throw new Error(`${at}.x5c must hold at least one certificate`);
      jwk.x5c.forEach((der, j) => {
        requireString(der, `${at}.x5c[${j}]`);
        requireCertBundle(`-----BEGIN CERTIFICATE-----\n${der}\n-----END CERTIFICATE-----`, `${at}.x5c[${j}]`);
      });
    } else if (!isMissing(jwk.n) || !isMissing(jwk.e)) {
      requireString(jwk.n, `${at}.n`);
      requireString(jwk.e, `${at}.e`);
    } else if (!isMissing(jwk.x) || !isMissing(jwk.y)) {
      requireString(jwk.x, `${at}.x`);
      requireString(jwk.y, `${at}.y`);
      requireString(jwk.crv, `${at}.crv`);
    } else {
      throw new Error(`${at} must carry x5c, or n and e (RSA), or x, y and crv (EC)`);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// KV helpers. Keys are UTF-8 strings unless said otherwise; values JSON unless said otherwise.

/** Single-value tables (constitution, service info and config) keep their value at 8 zero bytes. */
function singletonKey() {
  return new ArrayBuffer(8);
}

function getJson(table, key) {
  const raw = ccf.kv[table].get(key);
  return raw === undefined ? undefined : ccf.bufToJsonCompatible(raw);
}

function setJson(table, key, value) {
  ccf.kv[table].set(key, ccf.jsonCompatibleToBuf(value));
}

function getSingleton(table, what) {
  const value = getJson(table, singletonKey());
  if (value === undefined) throw new Error(`${what} (${table}) is missing: the service was not initialised`);
  return value;
}

const ALLOWED_TO_JOIN = "AllowedToJoin";
const CERT_VALIDITY_DAYS_DEFAULT = 365;

function countActiveRecoveryMembers() {
  let count = 0;
  ccf.kv["public:ccf.gov.members.encryption_public_keys"].forEach((_, memberId) => {
    const info = getJson("public:ccf.gov.members.info", memberId);
    if (info !== undefined && info.status === "Active") count++;
  });
  return count;
}

/**
 * Actions that change what the other open proposals mean (a new constitution, a newly allowed
 * platform) drop those proposals, so a vote cast under the old meaning cannot be reused.
 */
function dropOtherOpenProposals(proposalIdToKeep) {
  const table = "public:ccf.gov.proposals_info";
  ccf.kv[table].forEach((value, key) => {
    if (ccf.bufToStr(key) === proposalIdToKeep) return;
    const info = ccf.bufToJsonCompatible(value);
    if (info.state !== "Open") return;
    info.state = "Dropped";
    setJson(table, key, info);
  });
}

function updateRecoveryThreshold(threshold) {
  const configTable = "public:ccf.gov.service.config";
  const config = getSingleton(configTable, "The service configuration");
  if (config.recovery_threshold === threshold) return;
  const service = getSingleton("public:ccf.gov.service.info", "The service information");
  if (service.status === "WaitingForRecoveryShares") {
    throw new Error("the recovery threshold cannot change while the service waits for recovery shares");
  }
  if (service.status === "Open") {
    const recoveryMembers = countActiveRecoveryMembers();
    if (threshold > recoveryMembers) {
      throw new Error(`recovery threshold ${threshold} exceeds the ${recoveryMembers} active recovery member(s)`);
    }
  }
  config.recovery_threshold = threshold;
  setJson(configTable, singletonKey(), config);
  ccf.node.triggerRecoverySharesRefresh();
}

function endorseNodeCertificate(nodeId, nodeInfo, validFrom, validityPeriodDays) {
  const config = getSingleton("public:ccf.gov.service.config", "The service configuration");
  const maxDays = config.maximum_node_certificate_validity_days ?? CERT_VALIDITY_DAYS_DEFAULT;
  if (validityPeriodDays !== undefined && validityPeriodDays > maxDays) {
    throw new Error(`validity_period_days ${validityPeriodDays} exceeds the service's maximum of ${maxDays}`);
  }
  const certPem = ccf.network.generateEndorsedCertificate(
    nodeInfo.certificate_signing_request,
    validFrom,
    validityPeriodDays ?? maxDays,
  );
  ccf.kv["public:ccf.gov.nodes.endorsed_certificates"].set(ccf.strToBuf(nodeId), ccf.strToBuf(certPem));
}

// ---------------------------------------------------------------------------------------------
// Argument checks shared by several actions.

function validateJsBundle(bundle) {
  requireObject(bundle, "args.bundle");
  requireArray(bundle.modules, "args.bundle.modules");
  bundle.modules.forEach((m, i) => {
    requireObject(m, `args.bundle.modules[${i}]`);
    requireNonEmptyString(m.name, `args.bundle.modules[${i}].name`);
    requireString(m.module, `args.bundle.modules[${i}].module`);
  });
  const moduleNames = new Set(bundle.modules.map((m) => m.name));
  requireObject(bundle.metadata, "args.bundle.metadata");
  requireObject(bundle.metadata.endpoints, "args.bundle.metadata.endpoints");
  for (const [url, methods] of Object.entries(bundle.metadata.endpoints)) {
    requireObject(methods, `args.bundle.metadata.endpoints["${url}"]`);
    for (const [method, endpoint] of Object.entries(methods)) {
      const at = `args.bundle.metadata.endpoints["${url}"]["${method}"]`;
      requireObject(endpoint, at);
      requireString(endpoint.js_module, `${at}.js_module`);
      requireString(endpoint.js_function, `${at}.js_function`);
      requireOneOf(endpoint.mode, ["readwrite", "readonly", "historical"], `${at}.mode`);
      requireOneOf(endpoint.forwarding_required, ["sometimes", "always", "never"], `${at}.forwarding_required`);
      if (!isMissing(endpoint.redirection_strategy)) {
        requireOneOf(endpoint.redirection_strategy, ["none", "to_primary", "to_backup"], `${at}.redirection_strategy`);
      }
      optional(requireObject, endpoint.openapi, `${at}.openapi`);
      optional(requireBoolean, endpoint.openapi_hidden, `${at}.openapi_hidden`);
      requireArray(endpoint.authn_policies, `${at}.authn_policies`);
      endpoint.authn_policies.forEach((policy, i) => {
        if (typeof policy === "string") return;
        requireObject(policy, `${at}.authn_policies[${i}]`);
        requireArray(policy.all_of, `${at}.authn_policies[${i}].all_of`);
        policy.all_of.forEach((p, j) => requireString(p, `${at}.authn_policies[${i}].all_of[${j}]`));
      });
      if (!moduleNames.has(endpoint.js_module)) {
        throw new Error(`${at}.js_module names "${endpoint.js_module}", which is not among args.bundle.modules`);
      }
    }
  }
}

function validateCertificateValidity(args) {
  requireArgsObject(args);
  requireString(args.valid_from, "args.valid_from");
  optional(requireInteger, args.validity_period_days, "args.validity_period_days", 1);
}

// ---------------------------------------------------------------------------------------------
// The actions. Each has `validate(args)` (throws on malformed args; reads no KV state) and
// `apply(args, proposalId)` (writes the KV; throws to fail the whole proposal).

function action(validate, apply) {
  return Object.freeze({ validate, apply });
}

/** add_/remove_ pair over a table whose key is an argument string and whose value is `value(args)`. */
function allowListActions(table, field, validateArgs, value) {
  const add = action(validateArgs, (args, proposalId) => {
    ccf.kv[table].set(ccf.strToBuf(args[field]), value(args));
    dropOtherOpenProposals(proposalId);
  });
  const remove = action(
    (args) => {
      requireArgsObject(args);
      requireNonEmptyString(args[field], `args.${field}`);
    },
    (args) => {
      ccf.kv[table].delete(ccf.strToBuf(args[field]));
    },
  );
  return [add, remove];
}

const [addSnpMeasurement, removeSnpMeasurement] = allowListActions(
  "public:ccf.gov.nodes.snp.measurements",
  "measurement",
  (args) => {
    requireArgsObject(args);
    requireHex(args.measurement, "args.measurement");
  },
  () => ccf.jsonCompatibleToBuf(ALLOWED_TO_JOIN),
);

const [addSnpHostData, removeSnpHostData] = allowListActions(
  "public:ccf.gov.nodes.snp.host_data",
  "host_data",
  (args) => {
    requireArgsObject(args);
    requireHex(args.host_data, "args.host_data");
    optional(requireString, args.security_policy, "args.security_policy");
    if (!isMissing(args.security_policy) && args.security_policy !== "") {
      // The host data of a confidential container is the SHA-256 of its security policy.
      const digest = new Uint8Array(ccf.crypto.digest("SHA-256", ccf.strToBuf(args.security_policy)));
      const digestHex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
      if (digestHex !== args.host_data.toLowerCase()) {
        throw new Error(`args.host_data must be the SHA-256 of args.security_policy (${digestHex}), got ${args.host_data}`);
      }
    }
  },
  (args) => ccf.jsonCompatibleToBuf(args.security_policy ?? ""),
);

const [addVirtualMeasurement, removeVirtualMeasurement] = allowListActions(
  "public:ccf.gov.nodes.virtual.measurements",
  "measurement",
  (args) => {
    requireArgsObject(args);
    requireNonEmptyString(args.measurement, "args.measurement");
  },
  () => ccf.jsonCompatibleToBuf(ALLOWED_TO_JOIN),
);

const [addVirtualHostData, removeVirtualHostData] = allowListActions(
  "public:ccf.gov.nodes.virtual.host_data",
  "host_data",
  (args) => {
    requireArgsObject(args);
    requireNonEmptyString(args.host_data, "args.host_data");
  },
  // CCF keeps this table as a set: the value carries no information.
  () => singletonKey(),
);

// ---------------------------------------------------------------------------------------------
// The built-in EVM app's chain (Coco's own action; CCF has no EVM). The chain id and genesis
// allocation live in public:ccf.gov.evm.config, at the singleton key, as
// {"chain_id": 31337, "alloc": {"0x<40 lowercase hex>": "<wei, decimal>"}}. The EVM app refuses
// every call until this table is set, then credits the allocation once, in the transaction of
// the first EVM request. Like an Ethereum genesis block it is set once: a second proposal fails,
// so balances are never credited twice and signed transactions never change meaning.

const EVM_CONFIG = "public:ccf.gov.evm.config";
/** Bounds the proposal and the genesis transaction; a larger distribution belongs in a contract. */
const EVM_ALLOC_ENTRIES_MAX = 10000;
const EVM_BALANCE_MAX = (1n << 256n) - 1n;

function requireEvmChainId(value, field) {
  requireInteger(value, field, 1, Number.MAX_SAFE_INTEGER);
}

/** Wei as a decimal string ("1000") or a 0x-hex string ("0x3e8"); answers it as a canonical decimal string. */
function evmBalance(value, field) {
  requireNonEmptyString(value, field);
  if (!/^(0|[1-9][0-9]*)$/.test(value) && !/^0x[0-9a-fA-F]{1,64}$/.test(value)) {
    throw new Error(`${field} must be wei as a decimal string without leading zeros or a 0x-hex string, e.g. "1000000000000000000", got ${JSON.stringify(value)}`);
  }
  const wei = BigInt(value);
  if (wei > EVM_BALANCE_MAX) throw new Error(`${field} must be at most 2^256 - 1 wei, got ${value}`);
  return wei.toString();
}

/** Checks args.alloc and answers it with lowercase addresses and decimal balances. */
function evmAlloc(alloc, field) {
  requireObject(alloc, field);
  const entries = Object.entries(alloc);
  if (entries.length > EVM_ALLOC_ENTRIES_MAX) {
    throw new Error(`${field} must hold at most ${EVM_ALLOC_ENTRIES_MAX} accounts, got ${entries.length}`);
  }
  const out = {};
  for (const [address, balance] of entries) {
    if (!/^0x[0-9a-fA-F]{40}$/.test(address)) {
      throw new Error(`${field} keys must be 0x-prefixed 20-byte hex addresses, got ${JSON.stringify(address)}`);
    }
    const key = address.toLowerCase();
    if (Object.hasOwn(out, key)) throw new Error(`${field} names the address ${key} more than once`);
    out[key] = evmBalance(balance, `${field}["${address}"]`);
  }
  return out;
}

function validateEvmGenesis(args) {
  requireArgsObject(args);
  requireEvmChainId(args.chain_id, "args.chain_id");
  evmAlloc(args.alloc ?? {}, "args.alloc");
  const unknown = Object.keys(args).filter((k) => k !== "chain_id" && k !== "alloc");
  if (unknown.length > 0) throw new Error(`args has unknown field(s) ${unknown.join(", ")}: expected chain_id and alloc`);
}

function applyEvmGenesis(args) {
  const current = getJson(EVM_CONFIG, singletonKey());
  if (current !== undefined) {
    throw new Error(`the EVM chain is already configured (chain id ${current.chain_id}): a service's chain id and genesis allocation are set once`);
  }
  setJson(EVM_CONFIG, singletonKey(), { chain_id: args.chain_id, alloc: evmAlloc(args.alloc ?? {}, "args.alloc") });
}

const UVM_ENDORSEMENTS = "public:ccf.gov.nodes.snp.uvm_endorsements";

// The minimum TCB (firmware versions) a node's processor must report, per CPUID, as CCF keeps
// it: key = CPUID as 8 lowercase hex characters ("00a00f11": Milan), value = a TcbVersionPolicy
// {boot_loader, tee, snp, microcode[, fmc on Turin][, hexstring]}. A node whose CPUID has no
// entry cannot join on SEV-SNP.
const SNP_TCB_VERSIONS = "public:ccf.gov.nodes.snp.tcb_versions";

function requireLowercaseHexOfBytes(value, field, bytes) {
  requireNonEmptyString(value, field);
  if (value !== value.toLowerCase() || !/^[0-9a-f]*$/.test(value) || value.length !== 2 * bytes) {
    throw new Error(`${field} must be ${bytes} bytes as ${2 * bytes} lowercase hex characters, got ${JSON.stringify(value)}`);
  }
}

function validateSnpTcbVersion(args) {
  requireArgsObject(args);
  requireLowercaseHexOfBytes(args.cpuid, "args.cpuid", 4);
  requireObject(args.tcb_version, "args.tcb_version");
  for (const component of ["boot_loader", "tee", "snp", "microcode"]) {
    requireInteger(args.tcb_version[component], `args.tcb_version.${component}`, 0, 255);
  }
  optional(requireInteger, args.tcb_version.fmc, "args.tcb_version.fmc", 0, 255);
}


// Intel TDX (Coco's own actions and table: CCF has no TDX platform). Key: the MRTD (48 bytes,
// lowercase hex), the measurement of the TD's initial contents; value: the RTMRs members also
// require for it ({} = any). RTMR1/RTMR2 hold the kernel and its command line on common TD
// images, so pinning them pins the node's software, not only its firmware.
const TDX_MEASUREMENTS = "public:ccf.gov.nodes.tdx.measurements";
const TDX_RTMRS = ["rtmr0", "rtmr1", "rtmr2", "rtmr3"];

function validateTdxMeasurement(args) {
  requireArgsObject(args);
  requireLowercaseHexOfBytes(args.measurement, "args.measurement", 48);
  for (const rtmr of TDX_RTMRS) {
    if (!isMissing(args[rtmr])) requireLowercaseHexOfBytes(args[rtmr], `args.${rtmr}`, 48);
  }
  const unknown = Object.keys(args).filter((k) => k !== "measurement" && !TDX_RTMRS.includes(k));
  if (unknown.length > 0) throw new Error(`args has unknown field(s) ${unknown.join(", ")}: expected measurement and optionally rtmr0..rtmr3`);
}


const actions = new Map([
  [
    "set_constitution",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.constitution, "args.constitution");
      },
      (args, proposalId) => {
        // A JSON string, as CCF stores it; the node reloads the constitution from here.
        setJson("public:ccf.gov.constitution", singletonKey(), args.constitution);
        dropOtherOpenProposals(proposalId);
      },
    ),
  ],
  [
    "set_member",
    action(
      (args) => {
        requireArgsObject(args);
        requireCertBundle(args.cert, "args.cert");
        optional(requirePublicKeyPem, args.encryption_pub_key, "args.encryption_pub_key");
        optional(requireObject, args.member_data, "args.member_data");
        if (!isMissing(args.recovery_role)) {
          requireOneOf(args.recovery_role, ["NonParticipant", "Participant", "Owner"], "args.recovery_role");
          if (isMissing(args.encryption_pub_key)) {
            throw new Error("args.recovery_role needs args.encryption_pub_key: only members with an encryption key hold recovery shares");
          }
        }
      },
      (args) => {
        const memberId = ccf.strToBuf(ccf.pemToId(args.cert));
        // Certificates and encryption keys are stored as raw PEM bytes (not JSON), as in CCF.
        ccf.kv["public:ccf.gov.members.certs"].set(memberId, ccf.strToBuf(args.cert));
        if (isMissing(args.encryption_pub_key)) {
          ccf.kv["public:ccf.gov.members.encryption_public_keys"].delete(memberId);
        } else {
          ccf.kv["public:ccf.gov.members.encryption_public_keys"].set(memberId, ccf.strToBuf(args.encryption_pub_key));
        }
        // "Accepted" until the member acknowledges the state digest, then "Active".
        setJson("public:ccf.gov.members.info", memberId, {
          status: "Accepted",
          member_data: args.member_data,
          recovery_role: args.recovery_role,
        });
        const signature = getJson("public:ccf.internal.signatures", singletonKey());
        if (signature === undefined) {
          ccf.kv["public:ccf.gov.members.acks"].set(memberId);
        } else {
          setJson("public:ccf.gov.members.acks", memberId, { state_digest: signature.root });
        }
      },
    ),
  ],
  [
    "remove_member",
    action(
      (args) => {
        requireArgsObject(args);
        requireEntityId(args.member_id, "args.member_id");
      },
      (args) => {
        const memberId = ccf.strToBuf(args.member_id);
        const info = getJson("public:ccf.gov.members.info", memberId);
        if (info === undefined) return; // Removing an absent member is a no-op.
        const isActiveRecoveryMember =
          info.status === "Active" && ccf.kv["public:ccf.gov.members.encryption_public_keys"].has(memberId);
        if (isActiveRecoveryMember) {
          const config = getSingleton("public:ccf.gov.service.config", "The service configuration");
          const remaining = countActiveRecoveryMembers() - 1;
          if (remaining < config.recovery_threshold) {
            throw new Error(
              `removing member ${args.member_id} would leave ${remaining} active recovery member(s), fewer than the recovery threshold ${config.recovery_threshold}`,
            );
          }
        }
        for (const table of ["info", "encryption_public_keys", "certs", "acks"]) {
          ccf.kv[`public:ccf.gov.members.${table}`].delete(memberId);
        }
        ccf.kv["public:ccf.gov.history"].delete(memberId);
        // A removed recovery member holds a share of the current ledger secret: rotate it.
        if (isActiveRecoveryMember) ccf.node.triggerLedgerRekey();
      },
    ),
  ],
  [
    "set_member_data",
    action(
      (args) => {
        requireArgsObject(args);
        requireEntityId(args.member_id, "args.member_id");
        if (args.member_data !== null) requireObject(args.member_data, "args.member_data");
      },
      (args) => {
        const memberId = ccf.strToBuf(args.member_id);
        const info = getJson("public:ccf.gov.members.info", memberId);
        if (info === undefined) throw new Error(`member ${args.member_id} does not exist`);
        info.member_data = args.member_data;
        setJson("public:ccf.gov.members.info", memberId, info);
      },
    ),
  ],
  [
    "set_user",
    action(
      (args) => {
        requireArgsObject(args);
        requireCertBundle(args.cert, "args.cert");
        optional(requireObject, args.user_data, "args.user_data");
      },
      (args) => {
        const userId = ccf.strToBuf(ccf.pemToId(args.cert));
        ccf.kv["public:ccf.gov.users.certs"].set(userId, ccf.strToBuf(args.cert));
        if (isMissing(args.user_data)) ccf.kv["public:ccf.gov.users.info"].delete(userId);
        else setJson("public:ccf.gov.users.info", userId, { user_data: args.user_data });
      },
    ),
  ],
  [
    "remove_user",
    action(
      (args) => {
        requireArgsObject(args);
        requireEntityId(args.user_id, "args.user_id");
      },
      (args) => {
        const userId = ccf.strToBuf(args.user_id);
        ccf.kv["public:ccf.gov.users.certs"].delete(userId);
        ccf.kv["public:ccf.gov.users.info"].delete(userId);
      },
    ),
  ],
  [
    "set_user_data",
    action(
      (args) => {
        requireArgsObject(args);
        requireEntityId(args.user_id, "args.user_id");
        optional(requireObject, args.user_data, "args.user_data");
      },
      (args) => {
        const userId = ccf.strToBuf(args.user_id);
        if (isMissing(args.user_data)) ccf.kv["public:ccf.gov.users.info"].delete(userId);
        else setJson("public:ccf.gov.users.info", userId, { user_data: args.user_data });
      },
    ),
  ],
  [
    "set_service_principal",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.id, "args.id");
        requireObject(args.data, "args.data");
      },
      (args) => setJson("public:ccf.gov.service_principals", ccf.strToBuf(args.id), args.data),
    ),
  ],
  [
    "remove_service_principal",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.id, "args.id");
      },
      (args) => {
        ccf.kv["public:ccf.gov.service_principals"].delete(ccf.strToBuf(args.id));
      },
    ),
  ],
  [
    "transition_service_to_open",
    action(
      (args) => {
        requireArgsObject(args);
        requireCertBundle(args.next_service_identity, "args.next_service_identity");
        optional(requireCertBundle, args.previous_service_identity, "args.previous_service_identity");
      },
      (args) => {
        const service = getSingleton("public:ccf.gov.service.info", "The service information");
        if (service.status === "Recovering" && isMissing(args.previous_service_identity)) {
          throw new Error("opening a recovered service needs args.previous_service_identity (the old service certificate)");
        }
        const previous = isMissing(args.previous_service_identity) ? undefined : ccf.strToBuf(args.previous_service_identity);
        ccf.node.transitionServiceToOpen(previous, ccf.strToBuf(args.next_service_identity));
      },
    ),
  ],
  [
    "transition_node_to_trusted",
    action(
      (args) => {
        validateCertificateValidity(args);
        requireEntityId(args.node_id, "args.node_id");
      },
      (args) => {
        const nodeId = ccf.strToBuf(args.node_id);
        const info = getJson("public:ccf.gov.nodes.info", nodeId);
        if (info === undefined) throw new Error(`node ${args.node_id} does not exist`);
        if (info.status !== "Pending") return; // Trusting a trusted or retired node changes nothing.
        info.status = "Trusted";
        info.ledger_secret_seqno = ccf.network.getLatestLedgerSecretSeqno();
        setJson("public:ccf.gov.nodes.info", nodeId, info);
        if (info.certificate_signing_request !== undefined) {
          endorseNodeCertificate(args.node_id, info, args.valid_from, args.validity_period_days);
        }
      },
    ),
  ],
  [
    "remove_node",
    action(
      (args) => {
        requireArgsObject(args);
        requireEntityId(args.node_id, "args.node_id");
      },
      (args) => {
        const nodeId = ccf.strToBuf(args.node_id);
        const info = getJson("public:ccf.gov.nodes.info", nodeId);
        if (info === undefined) return;
        // A node never trusted is simply forgotten; a trusted one retires (leaves the configuration).
        if (info.status === "Pending") {
          ccf.kv["public:ccf.gov.nodes.info"].delete(nodeId);
        } else {
          info.status = "Retired";
          setJson("public:ccf.gov.nodes.info", nodeId, info);
        }
      },
    ),
  ],
  [
    "set_node_data",
    action(
      (args) => {
        requireArgsObject(args);
        requireEntityId(args.node_id, "args.node_id");
      },
      (args) => {
        const nodeId = ccf.strToBuf(args.node_id);
        const info = getJson("public:ccf.gov.nodes.info", nodeId);
        if (info === undefined) throw new Error(`node ${args.node_id} does not exist`);
        info.node_data = args.node_data;
        setJson("public:ccf.gov.nodes.info", nodeId, info);
      },
    ),
  ],
  [
    "set_node_certificate_validity",
    action(
      (args) => {
        validateCertificateValidity(args);
        requireEntityId(args.node_id, "args.node_id");
      },
      (args) => {
        const info = getJson("public:ccf.gov.nodes.info", ccf.strToBuf(args.node_id));
        if (info === undefined) throw new Error(`node ${args.node_id} does not exist`);
        if (info.status !== "Trusted") throw new Error(`node ${args.node_id} is ${info.status}, not Trusted`);
        if (info.certificate_signing_request === undefined) throw new Error(`node ${args.node_id} has no certificate signing request`);
        endorseNodeCertificate(args.node_id, info, args.valid_from, args.validity_period_days);
      },
    ),
  ],
  [
    "set_all_nodes_certificate_validity",
    action(validateCertificateValidity, (args) => {
      ccf.kv["public:ccf.gov.nodes.info"].forEach((value, key) => {
        const info = ccf.bufToJsonCompatible(value);
        if (info.status !== "Trusted" || info.certificate_signing_request === undefined) return;
        endorseNodeCertificate(ccf.bufToStr(key), info, args.valid_from, args.validity_period_days);
      });
    }),
  ],
  [
    "set_service_certificate_validity",
    action(validateCertificateValidity, (args) => {
      const config = getSingleton("public:ccf.gov.service.config", "The service configuration");
      const maxDays = config.maximum_service_certificate_validity_days ?? CERT_VALIDITY_DAYS_DEFAULT;
      if (args.validity_period_days !== undefined && args.validity_period_days > maxDays) {
        throw new Error(`validity_period_days ${args.validity_period_days} exceeds the service's maximum of ${maxDays}`);
      }
      const service = getSingleton("public:ccf.gov.service.info", "The service information");
      service.cert = ccf.network.generateNetworkCertificate(args.valid_from, args.validity_period_days ?? maxDays);
      setJson("public:ccf.gov.service.info", singletonKey(), service);
    }),
  ],
  [
    "set_recovery_threshold",
    action(
      (args) => {
        requireArgsObject(args);
        requireInteger(args.recovery_threshold, "args.recovery_threshold", 1, 254);
      },
      (args) => updateRecoveryThreshold(args.recovery_threshold),
    ),
  ],
  ["trigger_ledger_rekey", action(requireNoArgs, () => ccf.node.triggerLedgerRekey())],
  ["trigger_recovery_shares_refresh", action(requireNoArgs, () => ccf.node.triggerRecoverySharesRefresh())],
  ["trigger_ledger_chunk", action(requireNoArgs, () => ccf.node.triggerLedgerChunk())],
  ["trigger_snapshot", action(requireNoArgs, () => ccf.node.triggerSnapshot())],
  [
    "trigger_acme_refresh",
    action(
      (args) => {
        if (isMissing(args)) return;
        requireArgsObject(args);
        optional(requireArray, args.interfaces, "args.interfaces");
        if (Array.isArray(args.interfaces)) args.interfaces.forEach((name, i) => requireString(name, `args.interfaces[${i}]`));
      },
      (args) => ccf.node.triggerACMERefresh(args?.interfaces ?? undefined),
    ),
  ],
  [
    "set_js_runtime_options",
    action(
      (args) => {
        requireArgsObject(args);
        requireInteger(args.max_heap_bytes, "args.max_heap_bytes", 1);
        requireInteger(args.max_stack_bytes, "args.max_stack_bytes", 1);
        requireInteger(args.max_execution_time_ms, "args.max_execution_time_ms", 1);
        optional(requireBoolean, args.log_exception_details, "args.log_exception_details");
        optional(requireBoolean, args.return_exception_details, "args.return_exception_details");
        optional(requireInteger, args.max_cached_interpreters, "args.max_cached_interpreters", 0);
      },
      (args) => setJson("public:ccf.gov.js_runtime_options", singletonKey(), args),
    ),
  ],
  ["refresh_js_app_bytecode_cache", action(requireNoArgs, () => ccf.refreshAppBytecodeCache())],
  [
    "set_js_app",
    action(
      (args) => {
        requireArgsObject(args);
        validateJsBundle(args.bundle);
        optional(requireBoolean, args.disable_bytecode_cache, "args.disable_bytecode_cache");
      },
      (args) => {
        const modules = ccf.kv["public:ccf.gov.modules"];
        const endpoints = ccf.kv["public:ccf.gov.endpoints"];
        modules.clear();
        endpoints.clear();
        // Module paths are absolute within the app ("/" + name); sources are raw UTF-8.
        for (const m of args.bundle.modules) modules.set(ccf.strToBuf(`/${m.name}`), ccf.strToBuf(m.module));
        if (args.disable_bytecode_cache) {
          ccf.kv["public:ccf.gov.modules_quickjs_bytecode"].clear();
          ccf.kv["public:ccf.gov.modules_quickjs_version"].clear();
        } else {
          ccf.refreshAppBytecodeCache();
        }
        setJson("public:ccf.gov.interpreter.flush", singletonKey(), true);
        for (const [url, methods] of Object.entries(args.bundle.metadata.endpoints)) {
          for (const [method, endpoint] of Object.entries(methods)) {
            const properties = { ...endpoint, js_module: `/${endpoint.js_module}` };
            setJson("public:ccf.gov.endpoints", ccf.strToBuf(`${method.toUpperCase()} ${url}`), properties);
          }
        }
      },
    ),
  ],
  [
    "remove_js_app",
    action(requireNoArgs, () => {
      for (const table of ["modules", "modules_quickjs_bytecode", "modules_quickjs_version", "interpreter.flush", "endpoints"]) {
        ccf.kv[`public:ccf.gov.${table}`].clear();
      }
    }),
  ],
  [
    "set_ca_cert_bundle",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.name, "args.name");
        requireCertBundle(args.cert_bundle, "args.cert_bundle");
      },
      (args) => setJson("public:ccf.gov.tls.ca_cert_bundles", ccf.strToBuf(args.name), args.cert_bundle),
    ),
  ],
  [
    "remove_ca_cert_bundle",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.name, "args.name");
      },
      (args) => {
        ccf.kv["public:ccf.gov.tls.ca_cert_bundles"].delete(ccf.strToBuf(args.name));
      },
    ),
  ],
  [
    "set_jwt_issuer",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.issuer, "args.issuer");
        optional(requireBoolean, args.auto_refresh, "args.auto_refresh");
        optional(requireString, args.ca_cert_bundle_name, "args.ca_cert_bundle_name");
        optional(requireJwks, args.jwks, "args.jwks");
        if (args.auto_refresh) {
          if (!args.ca_cert_bundle_name) {
            throw new Error("args.ca_cert_bundle_name is required when args.auto_refresh is true");
          }
          // Keys are fetched from <issuer>/.well-known/openid-configuration: a plain https URL.
          if (!/^https:\/\/[^/?#]+[^?#]*$/.test(args.issuer)) {
            throw new Error("args.issuer must be an https:// URL without query or fragment when args.auto_refresh is true");
          }
        }
      },
      (args) => {
        if (args.auto_refresh && !ccf.kv["public:ccf.gov.tls.ca_cert_bundles"].has(ccf.strToBuf(args.ca_cert_bundle_name))) {
          throw new Error(`no CA certificate bundle named "${args.ca_cert_bundle_name}": propose set_ca_cert_bundle first`);
        }
        const { jwks, ...metadata } = args;
        if (!isMissing(jwks)) ccf.setJwtPublicSigningKeys(args.issuer, metadata, jwks);
        setJson("public:ccf.gov.jwt.issuers", ccf.strToBuf(args.issuer), metadata);
      },
    ),
  ],
  [
    "set_jwt_public_signing_keys",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.issuer, "args.issuer");
        requireJwks(args.jwks, "args.jwks");
      },
      (args) => {
        const metadata = getJson("public:ccf.gov.jwt.issuers", ccf.strToBuf(args.issuer));
        if (metadata === undefined) throw new Error(`JWT issuer ${args.issuer} does not exist: propose set_jwt_issuer first`);
        ccf.setJwtPublicSigningKeys(args.issuer, metadata, args.jwks);
      },
    ),
  ],
  [
    "remove_jwt_issuer",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.issuer, "args.issuer");
      },
      (args) => {
        const issuer = ccf.strToBuf(args.issuer);
        if (!ccf.kv["public:ccf.gov.jwt.issuers"].has(issuer)) return;
        ccf.kv["public:ccf.gov.jwt.issuers"].delete(issuer);
        ccf.removeJwtPublicSigningKeys(args.issuer);
      },
    ),
  ],
  ["add_snp_measurement", addSnpMeasurement],
  ["remove_snp_measurement", removeSnpMeasurement],
  ["add_snp_host_data", addSnpHostData],
  ["remove_snp_host_data", removeSnpHostData],
  ["add_virtual_measurement", addVirtualMeasurement],
  ["remove_virtual_measurement", removeVirtualMeasurement],
  ["add_virtual_host_data", addVirtualHostData],
  ["remove_virtual_host_data", removeVirtualHostData],
  [
    "add_snp_uvm_endorsement",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.did, "args.did");
        requireNonEmptyString(args.feed, "args.feed");
        requireNonEmptyString(args.svn, "args.svn");
      },
      (args, proposalId) => {
        // One entry per DID: { <feed>: { svn } }.
        const did = ccf.strToBuf(args.did);
        const feeds = getJson(UVM_ENDORSEMENTS, did) ?? {};
        feeds[args.feed] = { svn: args.svn };
        setJson(UVM_ENDORSEMENTS, did, feeds);
        dropOtherOpenProposals(proposalId);
      },
    ),
  ],
  [
    "remove_snp_uvm_endorsement",
    action(
      (args) => {
        requireArgsObject(args);
        requireNonEmptyString(args.did, "args.did");
        requireNonEmptyString(args.feed, "args.feed");
      },
      (args) => {
        const did = ccf.strToBuf(args.did);
        const feeds = getJson(UVM_ENDORSEMENTS, did) ?? {};
        delete feeds[args.feed];
        if (Object.keys(feeds).length === 0) ccf.kv[UVM_ENDORSEMENTS].delete(did);
        else setJson(UVM_ENDORSEMENTS, did, feeds);
      },
    ),
  ],
  ["set_evm_genesis", action(validateEvmGenesis, applyEvmGenesis)],
  [
    "add_tdx_measurement",
    action(validateTdxMeasurement, (args, proposalId) => {
      const entry = {};
      for (const rtmr of TDX_RTMRS) if (!isMissing(args[rtmr])) entry[rtmr] = args[rtmr];
      setJson(TDX_MEASUREMENTS, ccf.strToBuf(args.measurement), entry);
      dropOtherOpenProposals(proposalId);
    }),
  ],
  [
    "remove_tdx_measurement",
    action(
      (args) => {
        requireArgsObject(args);
        requireLowercaseHexOfBytes(args.measurement, "args.measurement", 48);
      },
      (args) => {
        ccf.kv[TDX_MEASUREMENTS].delete(ccf.strToBuf(args.measurement));
      },
    ),
  ],
  [
    "set_snp_minimum_tcb_version",
    action(validateSnpTcbVersion, (args, proposalId) => {
      const { boot_loader, tee, snp, microcode, fmc } = args.tcb_version;
      setJson(SNP_TCB_VERSIONS, ccf.strToBuf(args.cpuid), { boot_loader, tee, snp, microcode, ...(fmc === undefined ? {} : { fmc }) });
      dropOtherOpenProposals(proposalId);
    }),
  ],
  [
    "set_snp_minimum_tcb_version_hex",
    action(
      (args) => {
        requireArgsObject(args);
        requireLowercaseHexOfBytes(args.cpuid, "args.cpuid", 4);
        requireLowercaseHexOfBytes(args.tcb_version, "args.tcb_version", 8);
        ccf.tcbHexToPolicy(args.cpuid, args.tcb_version); // throws on a CPUID of no SEV-SNP family
      },
      (args, proposalId) => {
        setJson(SNP_TCB_VERSIONS, ccf.strToBuf(args.cpuid), ccf.tcbHexToPolicy(args.cpuid, args.tcb_version));
        dropOtherOpenProposals(proposalId);
      },
    ),
  ],
  [
    "remove_snp_minimum_tcb_version",
    action(
      (args) => {
        requireArgsObject(args);
        requireLowercaseHexOfBytes(args.cpuid, "args.cpuid", 4);
      },
      (args) => {
        const cpuid = ccf.strToBuf(args.cpuid);
        if (!ccf.kv[SNP_TCB_VERSIONS].has(cpuid)) throw new Error(`CPUID ${args.cpuid} has no minimum TCB version`);
        ccf.kv[SNP_TCB_VERSIONS].delete(cpuid);
      },
    ),
  ],
]);
