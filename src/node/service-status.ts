// The service's status (Opening, Open, ...) as recorded in `public:ccf.gov.service.info`,
// cached and refreshed whenever that table is written or rolled back: the frontend checks it
// on every app request, which must not cost a KV read and a JSON parse each time.
import type { Store } from "../kv/index.js";
import { SINGLETON_KEY } from "./signatures.js";

export const SERVICE_INFO_MAP = "public:ccf.gov.service.info";

export interface ServiceInfo {
  cert: string;
  status: string;
  recovery_count?: number;
  service_data?: unknown;
  current_service_create_txid?: string;
  previous_service_identity_version?: number;
}

export class ServiceStatus {
  private info: ServiceInfo | undefined;

  constructor(private readonly store: Store) {
    this.reload();
    store.onWrite(SERVICE_INFO_MAP, () => this.reload());
    store.onRollback(() => this.reload());
  }

  private reload(): void {
    const raw = this.store.get(SERVICE_INFO_MAP, SINGLETON_KEY);
    this.info = raw === undefined ? undefined : (JSON.parse(raw.toString("utf8")) as ServiceInfo);
  }

  get status(): string {
    return this.info?.status ?? "Opening";
  }

  get isOpen(): boolean {
    return this.info?.status === "Open";
  }

  get current(): ServiceInfo | undefined {
    return this.info;
  }
}
