-- Open digests: notifications held back to be stored as one, per receiver, type and
-- routing rule. A row is written (inserted or replaced whole) and deleted by Apply only,
-- under its user's user_state lock; it is due, and flushed, at due_at.
CREATE TABLE digests (
    user_id   text        NOT NULL,
    type      text        NOT NULL,
    rule      text        NOT NULL,
    opened_at timestamptz NOT NULL,
    due_at    timestamptz NOT NULL,
    -- notifications added, kept in items or not
    count     integer     NOT NULL,
    -- of the first item
    sender_id text        NOT NULL,
    object    text        NOT NULL,
    channels  text[]      NOT NULL,
    -- The first items, [{"k": idempotency key, "p": payload}, …]. json, not jsonb, like
    -- notifications.payload: each payload is kept byte for byte as it was sent, since the
    -- flushed notification's payload is built from them.
    items     json        NOT NULL,
    PRIMARY KEY (user_id, type, rule)
);

-- Due digests, earliest first (DueDigests).
CREATE INDEX digests_due ON digests (due_at);
