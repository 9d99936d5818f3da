/**
 * Generated from api/openapi.yaml by `npm run generate` (openapi-typescript).
 * Do not edit: change the spec and regenerate; `npm run check:generated`
 * fails when this file is out of date.
 */

export interface paths {
    "/_openmeet/provision/v1/tenants/{tenant}/users/{slug}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The OpenMeet tenant */
                tenant: components["parameters"]["Tenant"];
                /** @description The OpenMeet user's slug */
                slug: components["parameters"]["UserSlug"];
            };
            cookie?: never;
        };
        /** Read a ghost */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    /** @description The OpenMeet user's slug */
                    slug: components["parameters"]["UserSlug"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: components["responses"]["User"];
                404: components["responses"]["Error"];
            };
        };
        /** Create or update a ghost */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    /** @description The OpenMeet user's slug */
                    slug: components["parameters"]["UserSlug"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["UserRequest"];
                };
            };
            responses: {
                200: components["responses"]["User"];
                202: components["responses"]["User"];
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                409: components["responses"]["Error"];
                413: components["responses"]["Error"];
                502: components["responses"]["Error"];
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/provision/v1/tenants/{tenant}/{kind}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The OpenMeet tenant */
                tenant: components["parameters"]["Tenant"];
                kind: components["parameters"]["ProvisionKind"];
            };
            cookie?: never;
        };
        /** List portals by slug */
        get: {
            parameters: {
                query?: {
                    limit?: number;
                    after?: string;
                };
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description A page of portals */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["PortalList"];
                    };
                };
                400: components["responses"]["Error"];
                404: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/provision/v1/tenants/{tenant}/{kind}/{slug}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The OpenMeet tenant */
                tenant: components["parameters"]["Tenant"];
                kind: components["parameters"]["ProvisionKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        /** Read a portal */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: components["responses"]["Portal"];
                404: components["responses"]["Error"];
            };
        };
        /** Create, update or reopen a portal */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["PortalRequest"];
                };
            };
            responses: {
                200: components["responses"]["Portal"];
                202: components["responses"]["Portal"];
                400: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["Error"];
                413: components["responses"]["Error"];
                502: components["responses"]["Error"];
            };
        };
        post?: never;
        /** Close a portal */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: components["responses"]["Portal"];
                202: components["responses"]["Portal"];
                404: components["responses"]["Error"];
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/provision/v1/tenants/{tenant}/{kind}/{slug}/members": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The OpenMeet tenant */
                tenant: components["parameters"]["Tenant"];
                kind: components["parameters"]["ProvisionKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        /** List a portal's desired members */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Members */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            members: components["schemas"]["Member"][];
                        };
                    };
                };
                404: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/provision/v1/tenants/{tenant}/{kind}/{slug}/members:batch": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The OpenMeet tenant */
                tenant: components["parameters"]["Tenant"];
                kind: components["parameters"]["ProvisionKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** Set and remove many members at once, all or nothing */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["BatchRequest"];
                };
            };
            responses: {
                200: components["responses"]["Batch"];
                202: components["responses"]["Batch"];
                400: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["Error"];
                413: components["responses"]["Error"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/provision/v1/tenants/{tenant}/{kind}/{slug}/members/{user}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                /** @description The OpenMeet tenant */
                tenant: components["parameters"]["Tenant"];
                kind: components["parameters"]["ProvisionKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
                /** @description The member's OpenMeet user slug */
                user: components["parameters"]["User"];
            };
            cookie?: never;
        };
        /** Read a member */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The member's OpenMeet user slug */
                    user: components["parameters"]["User"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The member */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Member"];
                    };
                };
                404: components["responses"]["Error"];
            };
        };
        /** Make a ghost a member with a role */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The member's OpenMeet user slug */
                    user: components["parameters"]["User"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": components["schemas"]["MemberRequest"];
                };
            };
            responses: {
                /** @description The member, once Synapse has it and has pushed it to the bridge: the user can use the room through the client API at once */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Member"];
                    };
                };
                202: components["responses"]["Batch"];
                400: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["Error"];
                413: components["responses"]["Error"];
            };
        };
        post?: never;
        /** Take a ghost out of the portal */
        delete: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    /** @description The OpenMeet tenant */
                    tenant: components["parameters"]["Tenant"];
                    kind: components["parameters"]["ProvisionKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The member's OpenMeet user slug */
                    user: components["parameters"]["User"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                200: components["responses"]["Batch"];
                202: components["responses"]["Batch"];
                404: components["responses"]["Error"];
                409: components["responses"]["Error"];
            };
        };
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/whoami": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** The signed-in user */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The user */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            user_id: string;
                            tenant: string;
                            slug: string;
                            displayname: string;
                        };
                    };
                };
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** Portals whose room the user's ghost is joined to */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description Rooms */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            rooms: components["schemas"]["Room"][];
                        };
                    };
                };
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        /**
         * One of the user's rooms, with the power levels that decide what the user may do in it
         * @description The levels are read from Synapse at each call. A page offers removing other people's events only when power_level >= redact_level (one's own events need no level), and reads the room again when an m.room.power_levels event of the room arrives (event name m.event).
         */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The room */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["RoomDetail"];
                    };
                };
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                502: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/messages": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        /** History, newest first, read from Synapse as the user */
        get: {
            parameters: {
                query?: {
                    from?: string;
                    limit?: number;
                };
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description A page of history */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            chunk: components["schemas"]["StreamPayload"][];
                            /** @description Token of the next (older) page; absent at the start of the room */
                            end?: string;
                            /** @description The stream position this page is consistent with, read before Synapse was asked: every event of the room up to it is in this page or an older one. Load the newest page, then open the stream with Last-Event-ID = stream_pos: nothing is missed, and an event both carry (pushed while the page was read) has the same event ID in both. */
                            stream_pos: number;
                        };
                    };
                };
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/send/{txnId}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
                /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                txnId: components["parameters"]["TxnId"];
            };
            cookie?: never;
        };
        get?: never;
        /** Send a text message (idempotent on the user and txnId) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                    txnId: components["parameters"]["TxnId"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        body: string;
                        formatted_body?: string;
                        reply_to?: string;
                    };
                };
            };
            responses: {
                200: components["responses"]["Send"];
                202: components["responses"]["Send"];
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["TxnConflict"];
                413: components["responses"]["Error"];
                429: components["responses"]["SendLimited"];
                /** @description Refused by Synapse, or Synapse unreachable */
                502: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Send"] | components["schemas"]["Error"];
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/edit/{txnId}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
                /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                txnId: components["parameters"]["TxnId"];
            };
            cookie?: never;
        };
        get?: never;
        /** Replace the text of one of the user's messages */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                    txnId: components["parameters"]["TxnId"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        event_id: string;
                        body: string;
                        formatted_body?: string;
                    };
                };
            };
            responses: {
                200: components["responses"]["Send"];
                202: components["responses"]["Send"];
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["TxnConflict"];
                413: components["responses"]["Error"];
                429: components["responses"]["SendLimited"];
                /** @description Refused by Synapse, or Synapse unreachable */
                502: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Send"] | components["schemas"]["Error"];
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/react/{txnId}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
                /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                txnId: components["parameters"]["TxnId"];
            };
            cookie?: never;
        };
        get?: never;
        /**
         * React to an event
         * @description event_id may name any event of the room the user can see, also one just sent or older than the event log's retention: those are read from Synapse as the user. 400 for a malformed event_id ($ and at most 255 bytes, no spaces or control characters), 404 for an event of another room or one the user may not see. The same holds for edit, redact and receipt. A reaction the user has already made (same event, same key, not removed) is refused by Synapse as M_DUPLICATE_ANNOTATION: the answer is 409 with that errcode, also to a repeat of the same txnId; the reaction that is there stays. To take a reaction back, redact its event.
         */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                    txnId: components["parameters"]["TxnId"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        event_id: string;
                        key: string;
                    };
                };
            };
            responses: {
                200: components["responses"]["Send"];
                202: components["responses"]["Send"];
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                /** @description The user has already reacted to this event with this key (M_DUPLICATE_ANNOTATION), or the txnId was used for another request (NET.OPENMEET.TXN_CONFLICT); nothing was added */
                409: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @enum {string} */
                            errcode: "M_DUPLICATE_ANNOTATION" | "NET.OPENMEET.TXN_CONFLICT";
                            error: string;
                        };
                    };
                };
                413: components["responses"]["Error"];
                429: components["responses"]["SendLimited"];
                /** @description Refused by Synapse, or Synapse unreachable */
                502: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Send"] | components["schemas"]["Error"];
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/redact/{txnId}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
                /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                txnId: components["parameters"]["TxnId"];
            };
            cookie?: never;
        };
        get?: never;
        /** Remove an event (own, or anyone's with the redact level) */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                    txnId: components["parameters"]["TxnId"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        event_id: string;
                        reason?: string;
                    };
                };
            };
            responses: {
                200: components["responses"]["Send"];
                202: components["responses"]["Send"];
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["TxnConflict"];
                413: components["responses"]["Error"];
                429: components["responses"]["SendLimited"];
                /** @description Refused by Synapse, or Synapse unreachable */
                502: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Send"] | components["schemas"]["Error"];
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/typing": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        get?: never;
        /** Set the typing state */
        put: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        typing?: boolean;
                        timeout_ms?: number;
                    };
                };
            };
            responses: {
                /** @description Done */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": Record<string, never>;
                    };
                };
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                413: components["responses"]["Error"];
                429: components["responses"]["RateLimited"];
                502: components["responses"]["Error"];
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/receipt": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
            };
            cookie?: never;
        };
        get?: never;
        put?: never;
        /**
         * Mark the room read up to an event
         * @description Sets the user's receipt and read marker in Synapse and the bridge's unread marker. For an event the bridge's event log lacks (just sent, or older than the retention) the unread marker moves to the event once its push arrives if it is newer than the room's newest logged event (after at most 2 s, to all that is logged by then), and stays where it is otherwise.
         */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "application/json": {
                        event_id: string;
                    };
                };
            };
            responses: {
                /** @description Done */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": Record<string, never>;
                    };
                };
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                413: components["responses"]["Error"];
                429: components["responses"]["RateLimited"];
                502: components["responses"]["Error"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/rooms/{kind}/{slug}/upload/{txnId}": {
        parameters: {
            query?: never;
            header?: never;
            path: {
                kind: components["parameters"]["ClientKind"];
                /** @description The event's or group's slug */
                slug: components["parameters"]["Slug"];
                /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                txnId: components["parameters"]["TxnId"];
            };
            cookie?: never;
        };
        get?: never;
        /**
         * Send a file (idempotent on the user and txnId)
         * @description The body is the file itself, with its Content-Type and Content-Length. The bridge streams it to Synapse's media repository as the user's ghost and sends it as m.image, m.video, m.audio or m.file with info (mimetype, size, w and h of images, a thumbnail for images larger than 800x600). A repeat (same txnId, room, Content-Type, filename and Content-Length) answers as the first time did; the file is not read or stored again. Another request with that txnId is refused with 409. Nothing is stored for any error.
         */
        put: {
            parameters: {
                query?: {
                    /** @description The file's name as shown to others (directories and control characters are removed) */
                    filename?: string;
                };
                header?: never;
                path: {
                    kind: components["parameters"]["ClientKind"];
                    /** @description The event's or group's slug */
                    slug: components["parameters"]["Slug"];
                    /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
                    txnId: components["parameters"]["TxnId"];
                };
                cookie?: never;
            };
            requestBody: {
                content: {
                    "*/*": string;
                };
            };
            responses: {
                200: components["responses"]["Upload"];
                202: components["responses"]["Upload"];
                /** @description Empty file, or the upload ended before Content-Length bytes (NET.OPENMEET.TRUNCATED) */
                400: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                404: components["responses"]["Error"];
                409: components["responses"]["TxnConflict"];
                /** @description No Content-Length (M_MISSING_PARAM) */
                411: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                /** @description Larger than the bridge's or Synapse's limit (M_TOO_LARGE) */
                413: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                /** @description A type not allowed (NET.OPENMEET.TYPE_NOT_ALLOWED), or content that is not of its type (NET.OPENMEET.TYPE_MISMATCH) */
                415: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                429: components["responses"]["SendLimited"];
                /** @description Refused by Synapse */
                502: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Upload"] | components["schemas"]["Error"];
                    };
                };
                /** @description Synapse unavailable; nothing was stored, retry after Retry-After */
                503: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
            };
        };
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/media/config": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /** What may be uploaded */
        get: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The upload limits */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            /** @description The smaller of client_api.media.max_upload_bytes and Synapse's m.upload.size */
                            max_upload_bytes: number;
                            allowed_types: string[];
                        };
                    };
                };
                401: components["responses"]["Error"];
                404: components["responses"]["Error"];
                502: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/media/download/{server}/{mediaId}": {
        parameters: {
            query?: {
                /** @description The room the file was seen in */
                room?: string;
                /** @description Signed URLs: expiry (Unix seconds) */
                exp?: string;
                /** @description Signed URLs: signature */
                sig?: string;
            };
            header?: never;
            path: {
                server: string;
                mediaId: string;
            };
            cookie?: never;
        };
        /**
         * A file, as URLs in the stream and history name it
         * @description Authorised by the URL's signature (as handed out in the stream, history and upload answers; an <img> tag needs nothing else), or by the JWT with ?room= naming a room the user is joined to in which an event names the file. Range requests, ETag and If-None-Match; X-Content-Type-Options nosniff, a sandboxing Content-Security-Policy, Content-Disposition inline only for images, audio, video and plain text, attachment for everything else (never SVG or HTML inline).
         */
        get: {
            parameters: {
                query?: {
                    /** @description The room the file was seen in */
                    room?: string;
                    /** @description Signed URLs: expiry (Unix seconds) */
                    exp?: string;
                    /** @description Signed URLs: signature */
                    sig?: string;
                };
                header?: never;
                path: {
                    server: string;
                    mediaId: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The file */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "*/*": string;
                    };
                };
                /** @description The range asked for */
                206: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "*/*": string;
                    };
                };
                /** @description Not modified */
                304: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                /** @description Forged or expired signature, a closed room, or no room of the user's names the file */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                404: components["responses"]["Error"];
                416: components["responses"]["Error"];
                502: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/media/thumbnail/{server}/{mediaId}": {
        parameters: {
            query: {
                room?: string;
                exp?: string;
                sig?: string;
                width: number;
                height: number;
                method?: "scale" | "crop";
            };
            header?: never;
            path: {
                server: string;
                mediaId: string;
            };
            cookie?: never;
        };
        /**
         * A thumbnail Synapse makes of an image, authorised and served as downloads are
         * @description Authorised by the URL's signature (as handed out in the stream, history and upload answers; an <img> tag needs nothing else), or by the JWT with ?room= naming a room the user is joined to in which an event names the file. Range requests, ETag and If-None-Match; X-Content-Type-Options nosniff, a sandboxing Content-Security-Policy, Content-Disposition inline only for images, audio, video and plain text, attachment for everything else (never SVG or HTML inline).
         */
        get: {
            parameters: {
                query: {
                    room?: string;
                    exp?: string;
                    sig?: string;
                    width: number;
                    height: number;
                    method?: "scale" | "crop";
                };
                header?: never;
                path: {
                    server: string;
                    mediaId: string;
                };
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The file */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "*/*": string;
                    };
                };
                /** @description The range asked for */
                206: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "*/*": string;
                    };
                };
                /** @description Not modified */
                304: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content?: never;
                };
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                /** @description Forged or expired signature, a closed room, or no room of the user's names the file */
                403: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["Error"];
                    };
                };
                404: components["responses"]["Error"];
                416: components["responses"]["Error"];
                502: components["responses"]["Error"];
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/events/ticket": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        get?: never;
        put?: never;
        /** A single-use ticket for EventSource */
        post: {
            parameters: {
                query?: never;
                header?: never;
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The ticket */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": {
                            ticket: string;
                            expires_in_ms: number;
                        };
                    };
                };
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                429: components["responses"]["RateLimited"];
            };
        };
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
    "/_openmeet/client/v1/events": {
        parameters: {
            query?: never;
            header?: never;
            path?: never;
            cookie?: never;
        };
        /**
         * The user's event stream (text/event-stream)
         * @description One stream covers all the user's rooms. Each event has one `data:`
         *     line of JSON (no raw line breaks, NUL, U+0085, U+2028 or U+2029)
         *     and an `event:` name from this fixed set; never text taken from an
         *     event, whose real type is in `data.event.type`:
         *
         *     - `m.room.message`, `m.reaction`, `m.room.redaction`,
         *       `m.room.member`: logged events (StreamPayload), `id:` = stream
         *       position. Other people's `m.room.member` events come one by one
         *       while the stream keeps up; see `members`.
         *     - `m.typing`, `m.receipt`: ephemeral (StreamPayload with `users`),
         *       no `id:`, not replayed.
         *     - `m.event`: a logged event of any other type (StreamPayload,
         *       with `id:`).
         *     - `members`: others' membership of a room changed while the stream
         *       was behind (StreamMembers), no `id:`. Such a stream gets these
         *       instead of each member event, and is never cut off for them.
         *     - `reset`: the position is outside the log (StreamReset); reload
         *       history and resume from its `id:`.
         *     - `position` (StreamPosition): the stream's position and nothing
         *       else, `id:` = `data.stream_pos`.
         *
         *     Every stream is resumable from its first byte: a new stream starts
         *     with a `position` frame at the position it starts from (`id: 0` on
         *     an empty log), so a client cut off before any live event resumes
         *     from there. A resumed stream (`Last-Event-ID` or `last_event_id`)
         *     starts with a `position` frame at the position it resumes from,
         *     then the events it missed, then a `position` frame at the position
         *     it goes on from (past events of rooms the user is not in); one that
         *     resumes from a position the log does not hold starts with `reset`
         *     instead. To load history and then stream without a gap: read the
         *     newest page of each room (its `stream_pos`), and open the stream
         *     from the lowest of them; events both carry have the same event ID.
         *
         *     Comment lines (`: ping`) are heartbeats.
         */
        get: {
            parameters: {
                query?: {
                    ticket?: string;
                    last_event_id?: string;
                };
                header?: {
                    "Last-Event-ID"?: string;
                };
                path?: never;
                cookie?: never;
            };
            requestBody?: never;
            responses: {
                /** @description The stream */
                200: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "text/event-stream": string;
                    };
                };
                400: components["responses"]["Error"];
                401: components["responses"]["Error"];
                403: components["responses"]["Error"];
                /** @description This user or this client address opened too many streams lately (M_LIMIT_EXCEEDED); Retry-After and retry_after_ms say when to retry */
                429: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["LimitExceeded"];
                    };
                };
                /** @description Too many new streams bridge-wide, or this user has too many open, or the stream hub is not following the event log right now (starting, or retrying after a database failure) (M_LIMIT_EXCEEDED); Retry-After and retry_after_ms say when to retry */
                503: {
                    headers: {
                        [name: string]: unknown;
                    };
                    content: {
                        "application/json": components["schemas"]["LimitExceeded"];
                    };
                };
            };
        };
        put?: never;
        post?: never;
        delete?: never;
        options?: never;
        head?: never;
        patch?: never;
        trace?: never;
    };
}
export type webhooks = Record<string, never>;
export interface components {
    schemas: {
        /** @description A Matrix-style error */
        Error: {
            errcode: string;
            error: string;
        };
        /** @description M_LIMIT_EXCEEDED; Retry-After (whole seconds) and retry_after_ms say when to retry */
        LimitExceeded: {
            /** @enum {string} */
            errcode: "M_LIMIT_EXCEEDED";
            error: string;
            retry_after_ms: number;
        };
        /** @description A message in the outbox. state: sent (Synapse has it, event_id), pending (on its way; the bridge keeps trying) or failed (Synapse refused it for good; error says why). */
        Send: {
            txn_id: string;
            /** @enum {string} */
            state: "pending" | "sent" | "failed";
            event_id?: string;
            error?: string;
        };
        /** @enum {string} */
        SyncState: "synced" | "pending" | "error";
        UserRequest: {
            displayname: string;
            /** @description mxc:// URI or https URL */
            avatar_url?: string;
            /** @description Adopt this existing account (@{slug}_{tenant}:{server} of a tenant in appservice.legacy_users.tenants) instead of creating a ghost. The bridge acts as it through the appservice, with no token of its own. 400 when it is outside that namespace or does not exist, 409 when another user has it or this user already has a different account. */
            matrix_user_id?: string;
        };
        User: {
            tenant: string;
            slug: string;
            user_id: string;
            displayname: string;
            avatar_url: string;
            avatar_mxc: string;
            state: components["schemas"]["SyncState"];
            last_error?: string;
        };
        PortalRequest: {
            name: string;
            topic?: string;
            /** @enum {string} */
            visibility?: "public" | "private";
            ensure_room?: boolean;
            /** @description Adopt this existing room (a room ID, or an alias #event-{slug}-{tenant}:{server} / #group-{slug}-{tenant}:{server} of this portal's tenant and kind) with its history instead of creating one. 400 for a bad reference, 404 when the alias points nowhere, 409 when the portal already has another room or the room belongs to another portal. */
            room?: string;
        };
        Portal: {
            tenant: string;
            /** @enum {string} */
            kind: "event" | "group";
            slug: string;
            alias: string;
            room_id?: string;
            name: string;
            topic: string;
            /** @enum {string} */
            visibility: "public" | "private";
            closed: boolean;
            state: components["schemas"]["SyncState"];
            last_error?: string;
        };
        PortalList: {
            portals: components["schemas"]["Portal"][];
            next?: string;
        };
        MemberRequest: {
            role: string;
        };
        Member: {
            user_slug: string;
            user_id: string;
            role: string;
            power_level: number;
            /**
             * @description The ghost's membership as Synapse last pushed it to the bridge; absent when it never did. After a 200 from PUT or DELETE member or a batch it already shows the change.
             * @enum {string}
             */
            membership?: "join" | "invite" | "leave" | "ban" | "knock";
        };
        BatchRequest: {
            set?: {
                user_slug: string;
                role: string;
            }[];
            remove?: string[];
        };
        Room: {
            /** @description messages from others since the last receipt, at most 100 */
            unread: number;
            /** @enum {string} */
            kind: "event" | "group";
            slug: string;
            name: string;
            topic: string;
            alias: string;
            room_id: string;
        };
        RoomDetail: components["schemas"]["Room"] & {
            /** @description The user's power level in the room */
            power_level: number;
            /** @description The level needed to remove other people's events */
            redact_level: number;
        };
        /** @description Data of a position event: the stream's position, the same as its id: */
        StreamPosition: {
            stream_pos: number;
        };
        /** @description Data of a members event: Count member events of other people in the room, the newest at stream_pos; a page showing the room's members reloads them. */
        StreamMembers: {
            room_id: string;
            portal?: {
                tenant: string;
                kind: string;
                slug: string;
                name: string;
            };
            stream_pos: number;
            count: number;
        };
        /** @description Data of a reset event */
        StreamReset: {
            reason: string;
            stream_pos: number;
        };
        StreamPayload: {
            stream_pos?: number;
            room_id: string;
            portal?: {
                tenant: string;
                kind: string;
                slug: string;
                name: string;
            };
            sender?: {
                user_id: string;
                displayname: string;
                slug?: string;
            };
            txn_id?: string;
            /** @description m.typing: who is typing; m.receipt: who read. Named like sender. */
            users?: {
                user_id: string;
                displayname: string;
                slug?: string;
            }[];
            event: Record<string, never>;
            media?: components["schemas"]["MediaURLs"];
        };
        /** @description Browser-usable URLs of an event's files, signed for its room and valid for client_api.media.url_ttl at least (absolute with client_api.media.public_url, else relative to the bridge). */
        MediaURLs: {
            /** @description The file of an m.image, m.file, m.video or m.audio message */
            url?: string;
            /** @description The message's thumbnail, or one Synapse makes of an image */
            thumbnail_url?: string;
            /** @description The avatar an m.room.member event sets */
            avatar_url?: string;
            /** @description The sender's avatar in the room */
            sender_avatar_url?: string;
        };
        /** @description A Send, plus the file's mxc URI and signed URLs */
        Upload: {
            txn_id: string;
            /** @enum {string} */
            state: "pending" | "sent" | "failed";
            event_id?: string;
            error?: string;
            content_uri: string;
            url: string;
            thumbnail_url?: string;
        };
    };
    responses: {
        /** @description A Matrix-style error */
        Error: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Error"];
            };
        };
        /** @description This user made too many such requests lately (client_api.limits, per replica): M_LIMIT_EXCEEDED; Retry-After and retry_after_ms say when to retry. Nothing was done. */
        RateLimited: {
            headers: {
                /** @description Seconds to wait, rounded up */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["LimitExceeded"];
            };
        };
        /** @description M_LIMIT_EXCEEDED; nothing was stored. Either this user made too many such requests lately (client_api.limits, per replica), or client_api.limits.max_pending_outbox of the user's messages still wait for the homeserver (a txnId already stored is answered as usual). Retry-After and retry_after_ms say when to retry. */
        SendLimited: {
            headers: {
                /** @description Seconds to wait, rounded up */
                "Retry-After"?: number;
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["LimitExceeded"];
            };
        };
        /** @description A ghost */
        User: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["User"];
            };
        };
        /** @description A portal */
        Portal: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Portal"];
            };
        };
        /** @description The portal after a membership change. 200: Synapse has it and has pushed it to the bridge, so the users set can use the room through the client API at once and those removed no longer can. 202: not yet (portal state pending, or error with last_error); the bridge keeps going. */
        Batch: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": {
                    portal: components["schemas"]["Portal"];
                    changed: boolean;
                };
            };
        };
        /** @description A message in the outbox */
        Send: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Send"];
            };
        };
        /** @description The txnId was already used by this user for another request (another action, room or body): NET.OPENMEET.TXN_CONFLICT. Nothing was done; send a new request with a new txnId. */
        TxnConflict: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": {
                    /** @enum {string} */
                    errcode: "NET.OPENMEET.TXN_CONFLICT";
                    error: string;
                };
            };
        };
        /** @description A file sent, and its message in the outbox */
        Upload: {
            headers: {
                [name: string]: unknown;
            };
            content: {
                "application/json": components["schemas"]["Upload"];
            };
        };
    };
    parameters: {
        /** @description The OpenMeet tenant */
        Tenant: string;
        /** @description The event's or group's slug */
        Slug: string;
        /** @description The OpenMeet user's slug */
        UserSlug: string;
        /** @description The member's OpenMeet user slug */
        User: string;
        ProvisionKind: "events" | "groups";
        ClientKind: "events" | "groups";
        /** @description The client's transaction id, 1 to 255 characters, unique per user across rooms and actions: a request repeated with the same one (by the same user) is the same request and is answered as the first time. The same one with another request -- another action (send, edit, react, redact, upload), room or body (after decoding: spacing, key order and empty optional fields do not count; for uploads, another Content-Type, filename or Content-Length) -- is refused with 409 NET.OPENMEET.TXN_CONFLICT, and nothing of it is done. */
        TxnId: string;
    };
    requestBodies: never;
    headers: never;
    pathItems: never;
}
export type $defs = Record<string, never>;
export type operations = Record<string, never>;
