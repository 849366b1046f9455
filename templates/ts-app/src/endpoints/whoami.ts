// Echoes the caller as CCF describes it: the policy that accepted the request and, for a
// certificate, the caller's id (SHA-256 of its certificate) and user data.
import * as ccfapp from "@microsoft/ccf-app";

interface CertCaller {
  policy: string;
  id?: string;
  data?: unknown;
}

export function whoami(request: ccfapp.Request): ccfapp.Response<{ policy: string; id: string | null }> {
  const caller = request.caller as CertCaller | undefined;
  return { body: { policy: caller?.policy ?? "no_auth", id: caller?.id ?? null } };
}
