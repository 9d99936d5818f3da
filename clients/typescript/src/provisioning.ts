// ProvisioningClient: what the OpenMeet backend calls to tell the bridge
// which users, events, groups and memberships exist.
import { send, seg, type FetchLike, type RequestSpec } from "./http.js";
import type { BatchRequest, BatchResult, Member, Portal, PortalKind, PortalList, PortalRequest, User, UserRequest } from "./types.js";

export const provisionPrefix = "/_openmeet/provision/v1";

export interface ProvisioningClientOptions {
  /** The bridge's URL, e.g. "http://bridge.internal:29400". */
  baseUrl: string;
  /** provisioning.shared_secret, or a function returning it (for rotation). */
  secret: string | (() => string | Promise<string>);
  /** fetch to use (default globalThis.fetch). */
  fetch?: FetchLike;
  /** Abort a request after this many ms (default 60000; member calls wait for Synapse). */
  timeoutMs?: number;
}

/**
 * The answer to a call that changes something. 200: applied (Synapse has
 * it). 202: stored, and the bridge keeps applying it in the background
 * (value.state is "pending", or "error" with last_error); not an error.
 */
export type Outcome<T, P = T> = { pending: false; status: 200; value: T } | { pending: true; status: 202; value: P };

/** `events` or `groups` in paths; `event` and `group` are accepted too. */
function kindPath(kind: PortalKind): string {
  switch (kind) {
    case "event":
    case "events":
      return "events";
    case "group":
    case "groups":
      return "groups";
  }
  throw new TypeError(`unknown portal kind ${JSON.stringify(kind)}: want events or groups`);
}

/**
 * Calls the provisioning API. Refusals throw BridgeError (errcode, status,
 * message); an unreachable bridge throws NetworkError. Every call is
 * idempotent, so retrying after a NetworkError is safe.
 */
export class ProvisioningClient {
  private readonly fetchImpl: FetchLike;

  constructor(private readonly opts: ProvisioningClientOptions) {
    if (!opts.fetch && typeof globalThis.fetch !== "function") throw new Error("fetch is not available: pass options.fetch");
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** Creates or updates a ghost. */
  putUser(tenant: string, slug: string, user: UserRequest): Promise<Outcome<User>> {
    return this.change<User>("PUT", this.userPath(tenant, slug), user);
  }

  getUser(tenant: string, slug: string): Promise<User> {
    return this.read<User>(this.userPath(tenant, slug));
  }

  /** Creates, updates or reopens a portal. */
  putPortal(tenant: string, kind: PortalKind, slug: string, portal: PortalRequest): Promise<Outcome<Portal>> {
    return this.change<Portal>("PUT", this.portalPath(tenant, kind, slug), portal);
  }

  getPortal(tenant: string, kind: PortalKind, slug: string): Promise<Portal> {
    return this.read<Portal>(this.portalPath(tenant, kind, slug));
  }

  /** One page of portals by slug; pass the page's next as after for the following one. */
  listPortals(tenant: string, kind: PortalKind, opts: { limit?: number; after?: string } = {}): Promise<PortalList> {
    return this.read<PortalList>(`${provisionPrefix}/tenants/${seg(tenant)}/${kindPath(kind)}`, { limit: opts.limit, after: opts.after });
  }

  /** Every portal of a kind, page after page. */
  async *allPortals(tenant: string, kind: PortalKind, opts: { pageSize?: number } = {}): AsyncGenerator<Portal> {
    let after: string | undefined;
    do {
      const page = await this.listPortals(tenant, kind, { limit: opts.pageSize, after } as { limit?: number; after?: string });
      yield* page.portals;
      after = page.next || undefined;
    } while (after !== undefined);
  }

  /** Closes a portal: ghosts leave, the alias goes, the room becomes invite-only. */
  closePortal(tenant: string, kind: PortalKind, slug: string): Promise<Outcome<Portal>> {
    return this.change<Portal>("DELETE", this.portalPath(tenant, kind, slug));
  }

  /** Makes a ghost a member with a role; 202 answers with the portal (BatchResult). */
  putMember(tenant: string, kind: PortalKind, slug: string, user: string, role: string): Promise<Outcome<Member, BatchResult>> {
    return this.change<Member, BatchResult>("PUT", this.memberPath(tenant, kind, slug, user), { role });
  }

  getMember(tenant: string, kind: PortalKind, slug: string, user: string): Promise<Member> {
    return this.read<Member>(this.memberPath(tenant, kind, slug, user));
  }

  async listMembers(tenant: string, kind: PortalKind, slug: string): Promise<Member[]> {
    return (await this.read<{ members: Member[] }>(`${this.portalPath(tenant, kind, slug)}/members`)).members;
  }

  /** Takes a ghost out of the portal. */
  removeMember(tenant: string, kind: PortalKind, slug: string, user: string): Promise<Outcome<BatchResult>> {
    return this.change<BatchResult>("DELETE", this.memberPath(tenant, kind, slug, user));
  }

  /** Sets and removes up to 10,000 members at once, all or nothing. */
  batchMembers(tenant: string, kind: PortalKind, slug: string, batch: BatchRequest): Promise<Outcome<BatchResult>> {
    return this.change<BatchResult>("POST", `${this.portalPath(tenant, kind, slug)}/members:batch`, batch);
  }

  private userPath(tenant: string, slug: string): string {
    return `${provisionPrefix}/tenants/${seg(tenant)}/users/${seg(slug)}`;
  }

  private portalPath(tenant: string, kind: PortalKind, slug: string): string {
    return `${provisionPrefix}/tenants/${seg(tenant)}/${kindPath(kind)}/${seg(slug)}`;
  }

  private memberPath(tenant: string, kind: PortalKind, slug: string, user: string): string {
    return `${this.portalPath(tenant, kind, slug)}/members/${seg(user)}`;
  }

  private async read<T>(path: string, query?: RequestSpec["query"]): Promise<T> {
    const spec: RequestSpec = { method: "GET", path };
    if (query) spec.query = query;
    return (await this.request<T>(spec)).body;
  }

  private async change<T, P = T>(method: "PUT" | "POST" | "DELETE", path: string, body?: unknown): Promise<Outcome<T, P>> {
    const spec: RequestSpec = { method, path };
    if (body !== undefined) spec.body = body;
    const answer = await this.request<T | P>(spec);
    if (answer.status === 202) return { pending: true, status: 202, value: answer.body as P };
    return { pending: false, status: 200, value: answer.body as T };
  }

  private async request<T>(spec: RequestSpec) {
    const s = this.opts.secret;
    const secret = typeof s === "function" ? await s() : s;
    const timeout = this.opts.timeoutMs ?? 60000;
    const req: RequestSpec = { ...spec, headers: { Authorization: `Bearer ${secret}` } };
    if (timeout > 0 && typeof AbortSignal.timeout === "function") req.signal = AbortSignal.timeout(timeout);
    return send<T>(this.fetchImpl, this.opts.baseUrl, req);
  }
}
