-- Notifications. A row is also its receiver's new-notification log entry: seq is the
-- entry's position, created_at its time, unread_after the receiver's unread total
-- right after it.
CREATE TABLE notifications (
    id           uuid        PRIMARY KEY,
    receiver_id  text        NOT NULL,
    seq          bigint      NOT NULL,
    unread_after bigint      NOT NULL,
    created_at   timestamptz NOT NULL,
    read_at      timestamptz,
    sender_id    text        NOT NULL,
    type         text        NOT NULL,
    object       text        NOT NULL,
    -- json, not jsonb: the payload is kept as it was sent (what the live entry carried)
    -- and json is cheaper to insert.
    payload      json,
    channels     text[]      NOT NULL,
    idem_key     text,
    idem_hash    bytea,
    CONSTRAINT notifications_idem_pair CHECK ((idem_key IS NULL) = (idem_hash IS NULL))
);

-- A receiver's notifications in log order (Created, Events); one seq per receiver.
CREATE UNIQUE INDEX notifications_receiver_seq ON notifications (receiver_id, seq);

-- A receiver's unread notifications, newest first (Unread, read-all).
CREATE INDEX notifications_unread ON notifications (receiver_id, seq) WHERE read_at IS NULL;

-- Idempotency keys are unique per sender.
CREATE UNIQUE INDEX notifications_idem ON notifications (sender_id, idem_key) WHERE idem_key IS NOT NULL;

-- Read and read-all entries of the users' event logs. The time of the change is at: a
-- notification-read entry's notification is read at it, an all-notifications-read entry
-- reads updated notifications at it.
CREATE TABLE notification_log (
    user_id         text        NOT NULL,
    seq             bigint      NOT NULL,
    event           text        NOT NULL,
    at              timestamptz NOT NULL,
    unread          bigint      NOT NULL,
    notification_id uuid,
    updated         bigint,
    PRIMARY KEY (user_id, seq),
    CONSTRAINT notification_log_event CHECK (
        (event = 'notification-read' AND notification_id IS NOT NULL AND updated IS NULL) OR
        (event = 'all-notifications-read' AND notification_id IS NULL AND updated IS NOT NULL))
);

-- Pruning by time; rows arrive roughly in time order, so a BRIN index is enough.
CREATE INDEX notification_log_at ON notification_log USING brin (at);

-- Each user's latest log seq and unread total. Every batch locks the rows of the users it
-- touches; room on each page keeps the updates HOT.
CREATE TABLE user_state (
    user_id text   PRIMARY KEY,
    seq     bigint NOT NULL,
    unread  bigint NOT NULL
) WITH (fillfactor = 70);
