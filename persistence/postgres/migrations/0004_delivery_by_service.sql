-- Whether a service (an API key or a routing rule) created the delivery's notification,
-- as the planner recorded it. An e-mail goes to the payload's "email" address only when
-- it did; otherwise to the receiver's contact. Rows written before this column read
-- false, so their payload's "email" is not honoured: who created them is not known,
-- and a user's notification must never choose its own recipient.
ALTER TABLE deliveries ADD COLUMN by_service boolean NOT NULL DEFAULT false;
