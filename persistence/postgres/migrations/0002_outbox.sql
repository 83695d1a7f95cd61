-- The outbox: one row per delivery of a notification through a channel beyond realtime
-- (email, webhook), written in the transaction that stores the notification. A pending
-- row is due at due_at; a claim leases it by moving due_at a lease ahead, so a row whose
-- sender died comes back by itself. No foreign key to notifications: the rows are only
-- ever written with their notification, notifications are never deleted, and the check
-- would lock each new notification row again in the batch that inserts it.
CREATE TABLE deliveries (
    id              uuid        PRIMARY KEY,
    notification_id uuid        NOT NULL,
    user_id         text        NOT NULL,
    channel         text        NOT NULL,
    state           text        NOT NULL,
    attempts        integer     NOT NULL,
    due_at          timestamptz NOT NULL,
    -- an escalation: cancelled instead of sent when its notification is read by due_at
    unread_only     boolean     NOT NULL,
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT deliveries_state CHECK (state IN ('pending', 'sent', 'dead', 'cancelled'))
);

-- The claim: pending rows, earliest due first. Rows leave it when they are finished.
CREATE INDEX deliveries_due ON deliveries (due_at, id) WHERE state = 'pending';

-- Listing by state in id (creation) order: dead letters for an operator.
CREATE INDEX deliveries_state_id ON deliveries (state, id);

-- How each user is reached outside the app.
CREATE TABLE contacts (
    user_id text PRIMARY KEY,
    email   text NOT NULL
);

-- Each user's opt-outs (persistence.Preferences as JSON). No row: everything on.
CREATE TABLE preferences (
    user_id text  PRIMARY KEY,
    prefs   jsonb NOT NULL
);
