-- v1 -> v2 (compatible with v1+): Ghosts, portals and portal members

-- OpenMeet users. The row is the desired profile; *_applied say what was
-- last set on the homeserver, so only changes are sent.
CREATE TABLE ghost (
    tenant              TEXT    NOT NULL,
    slug                TEXT    NOT NULL,
    user_id             TEXT    NOT NULL UNIQUE,
    displayname         TEXT    NOT NULL,
    -- What the backend gave: an mxc:// URI or an https URL.
    avatar_source       TEXT    NOT NULL DEFAULT '',
    -- The mxc:// URI of the avatar (uploaded from avatar_source if needed).
    avatar_mxc          TEXT    NOT NULL DEFAULT '',
    registered          BOOLEAN NOT NULL DEFAULT false,
    displayname_applied TEXT,
    avatar_applied      TEXT,
    last_error          TEXT    NOT NULL DEFAULT '',
    updated_at          BIGINT  NOT NULL,
    PRIMARY KEY (tenant, slug)
);

-- OpenMeet events and groups. The row is the desired state of the room;
-- desired_version grows on every change and synced_version says up to
-- which change the homeserver matches.
CREATE TABLE portal (
    tenant          TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('event', 'group')),
    slug            TEXT    NOT NULL,
    alias           TEXT    NOT NULL UNIQUE,
    room_id         TEXT    UNIQUE,
    name            TEXT    NOT NULL,
    topic           TEXT    NOT NULL DEFAULT '',
    visibility      TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    closed          BOOLEAN NOT NULL DEFAULT false,
    -- The room is made when it has members, or once someone asked for it.
    room_requested  BOOLEAN NOT NULL DEFAULT false,
    desired_version BIGINT  NOT NULL DEFAULT 1,
    synced_version  BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant, kind, slug)
);

-- Who should be in a portal's room, with which role.
CREATE TABLE portal_member (
    tenant    TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    slug      TEXT   NOT NULL,
    user_slug TEXT   NOT NULL,
    role      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, slug, user_slug),
    FOREIGN KEY (tenant, kind, slug) REFERENCES portal (tenant, kind, slug) ON DELETE CASCADE,
    FOREIGN KEY (tenant, user_slug) REFERENCES ghost (tenant, slug) ON DELETE CASCADE
);
CREATE INDEX portal_member_user_idx ON portal_member (tenant, user_slug);
