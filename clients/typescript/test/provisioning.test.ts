import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { BridgeError, ErrCode, NetworkError } from "../src/errors.js";
import { ProvisioningClient } from "../src/provisioning.js";
import { deadURL, json, serve, type Handler } from "./helpers.js";

const portal = {
  tenant: "t",
  kind: "event",
  slug: "summer-party",
  alias: "#openmeet_t_event_summer-party:localhost",
  name: "Summer party",
  topic: "",
  visibility: "public",
  closed: false,
  state: "synced",
};

async function setup(t: { after(fn: () => unknown): void }, handler: Handler) {
  const server = await serve((req, res, raw) => {
    if (req.headers.authorization !== "Bearer s3cret") {
      json(res, 401, { errcode: "M_MISSING_TOKEN", error: "Missing provisioning secret" });
      return;
    }
    return handler(req, res, raw);
  });
  t.after(() => server.close());
  return { server, client: new ProvisioningClient({ baseUrl: server.url + "/", secret: "s3cret" }) };
}

describe("ProvisioningClient", () => {
  test("200 is applied, 202 is a pending result, not an error", async (t) => {
    const { client, server } = await setup(t, (req, res) => {
      if (req.path.endsWith("/events/summer-party")) json(res, 200, portal);
      else json(res, 202, { ...portal, slug: "slow", state: "pending" });
    });
    const done = await client.putPortal("t", "event", "summer-party", { name: "Summer party", ensure_room: true });
    assert.equal(done.pending, false);
    assert.equal(done.status, 200);
    assert.equal(done.value.state, "synced");
    const slow = await client.putPortal("t", "events", "slow", { name: "Slow" });
    assert.equal(slow.pending, true);
    assert.equal(slow.status, 202);
    assert.equal(slow.value.state, "pending");
    assert.deepEqual(JSON.parse(server.requests[0]!.body), { name: "Summer party", ensure_room: true });
    assert.equal(server.requests[0]!.method, "PUT");
    assert.equal(server.requests[0]!.headers["content-type"], "application/json");
  });

  test("refusals are BridgeErrors with errcode, status and the bridge's message", async (t) => {
    const { client } = await setup(t, (req, res) => {
      if (req.path.includes("/users/")) json(res, 404, { errcode: "M_NOT_FOUND", error: "Unknown user" });
      else if (req.path.endsWith("/members:batch")) json(res, 409, { errcode: "NET.OPENMEET.PORTAL_CLOSED", error: "The portal is closed" });
      else if (req.method === "PUT") json(res, 400, { errcode: "M_BAD_JSON", error: 'field "name" must be string' });
      else {
        res.writeHead(502, "Bad Gateway", { "Content-Type": "text/html" });
        res.end("<html>proxy error</html>");
      }
    });
    const check = (errcode: string, status: number, message: RegExp) => (err: unknown) => {
      assert.ok(err instanceof BridgeError, String(err));
      assert.equal(err.errcode, errcode);
      assert.equal(err.status, status);
      assert.match(err.message, message);
      return true;
    };
    await assert.rejects(client.getUser("t", "nobody"), check(ErrCode.NotFound, 404, /^Unknown user$/));
    await assert.rejects(
      client.batchMembers("t", "event", "gone", { set: [{ user_slug: "ada", role: "host" }] }),
      check(ErrCode.PortalClosed, 409, /closed/),
    );
    await assert.rejects(client.putPortal("t", "group", "g", { name: "G" }), check(ErrCode.BadJSON, 400, /must be string/));
    await assert.rejects(client.getPortal("t", "group", "g"), check(ErrCode.Unknown, 502, /502 Bad Gateway: <html>proxy error/));
  });

  test("a wrong secret is a 401 BridgeError", async (t) => {
    const { server } = await setup(t, (_req, res) => json(res, 200, {}));
    const wrong = new ProvisioningClient({ baseUrl: server.url, secret: () => Promise.resolve("wrong") });
    await assert.rejects(wrong.getUser("t", "ada"), (err: unknown) => err instanceof BridgeError && err.status === 401 && err.errcode === ErrCode.MissingToken);
  });

  test("an unreachable bridge is a NetworkError", async () => {
    const client = new ProvisioningClient({ baseUrl: await deadURL(), secret: "s3cret" });
    await assert.rejects(client.getUser("t", "ada"), NetworkError);
  });

  test("members: paths escape every segment; 200 gives the member, 202 the portal", async (t) => {
    const { client, server } = await setup(t, (req, res) => {
      if (req.method === "PUT" && req.path.endsWith("/members/b%C3%B6b%2Fx")) {
        json(res, 202, { portal: { ...portal, state: "pending" }, changed: true });
      } else if (req.method === "PUT") {
        json(res, 200, { user_slug: "ada", user_id: "@openmeet_t_ada:localhost", role: "host", power_level: 100, membership: "join" });
      } else if (req.method === "DELETE") {
        json(res, 200, { portal, changed: true });
      } else if (req.path.endsWith("/members")) {
        json(res, 200, { members: [] });
      } else {
        json(res, 200, { portal, changed: false });
      }
    });
    const ada = await client.putMember("t", "event", "summer party", "ada", "host");
    assert.equal(ada.pending, false);
    if (!ada.pending) assert.equal(ada.value.power_level, 100);
    const bob = await client.putMember("t", "event", "summer party", "böb/x", "attendee");
    assert.equal(bob.pending, true);
    if (bob.pending) assert.equal(bob.value.portal.state, "pending");
    const removed = await client.removeMember("t", "groups", "g", "ada");
    assert.equal(removed.value.changed, true);
    assert.deepEqual(await client.listMembers("t", "group", "g"), []);
    const batch = await client.batchMembers("t", "group", "g", { set: [{ user_slug: "ada", role: "owner" }], remove: ["bob"] });
    assert.equal(batch.pending, false);
    assert.deepEqual(
      server.requests.map((r) => `${r.method} ${r.path}`),
      [
        "PUT /_openmeet/provision/v1/tenants/t/events/summer%20party/members/ada",
        "PUT /_openmeet/provision/v1/tenants/t/events/summer%20party/members/b%C3%B6b%2Fx",
        "DELETE /_openmeet/provision/v1/tenants/t/groups/g/members/ada",
        "GET /_openmeet/provision/v1/tenants/t/groups/g/members",
        "POST /_openmeet/provision/v1/tenants/t/groups/g/members:batch",
      ],
    );
    assert.deepEqual(JSON.parse(server.requests[0]!.body), { role: "host" });
    assert.deepEqual(JSON.parse(server.requests[4]!.body), { set: [{ user_slug: "ada", role: "owner" }], remove: ["bob"] });
  });

  test("allPortals follows next until the last page", async (t) => {
    const { client, server } = await setup(t, (req, res) => {
      const after = req.query.get("after");
      if (!after) json(res, 200, { portals: [{ ...portal, slug: "a" }, { ...portal, slug: "b" }], next: "b" });
      else json(res, 200, { portals: [{ ...portal, slug: "c" }] });
    });
    const slugs: string[] = [];
    for await (const p of client.allPortals("t", "event", { pageSize: 2 })) slugs.push(p.slug);
    assert.deepEqual(slugs, ["a", "b", "c"]);
    assert.deepEqual(
      server.requests.map((r) => r.query.toString()),
      ["limit=2", "limit=2&after=b"],
    );
  });

  test("users and closing portals", async (t) => {
    const user = { tenant: "t", slug: "ada", user_id: "@openmeet_t_ada:localhost", displayname: "Ada", avatar_url: "", avatar_mxc: "", state: "synced" };
    const { client } = await setup(t, (req, res) => {
      if (req.path.includes("/users/")) json(res, 200, user);
      else json(res, 202, { ...portal, closed: true, state: "pending" });
    });
    const put = await client.putUser("t", "ada", { displayname: "Ada" });
    assert.equal(put.value.user_id, user.user_id);
    const closed = await client.closePortal("t", "event", "summer-party");
    assert.equal(closed.pending, true);
    assert.equal(closed.value.closed, true);
    assert.throws(() => client.getPortal("t", "party" as never, "x"), TypeError);
  });
});
