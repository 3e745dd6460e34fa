-- gcr-usage: blob writes (action = 'push') per bucket and repository: successful pushes,
-- failed ones, bytes received (request bytes of the successful ones), distinct pushing
-- client IPs. A push reaches the bucket from the registry's upload flow, so its Referer
-- rarely names a blob and `repository` is usually NULL (one row per bucket then).
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.pushes` AS
SELECT
  bucket,
  registry_host,
  repository,
  COUNTIF(success) AS pushes,
  COUNTIF(NOT success) AS failed,
  SUM(IF(success, request_bytes, 0)) AS bytes_received,
  COUNT(DISTINCT IF(success, client_ip, NULL)) AS clients,
  MIN(event_time) AS first_seen,
  MAX(event_time) AS last_seen
FROM `${PROJECT}.${DATASET}.registry_events_unique`
WHERE action = 'push'
GROUP BY bucket, registry_host, repository;
