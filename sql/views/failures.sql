-- gcr-usage: unsuccessful requests (status neither 2xx nor 304) by status and action, each
-- request once, with the buckets and days they span.
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.failures` AS
SELECT
  status,
  action,
  COUNT(*) AS count,
  COUNT(DISTINCT bucket) AS buckets,
  COUNT(DISTINCT client_ip) AS clients,
  MIN(event_time) AS first_seen,
  MAX(event_time) AS last_seen
FROM `${PROJECT}.${DATASET}.registry_events_unique`
WHERE NOT success
GROUP BY status, action;
