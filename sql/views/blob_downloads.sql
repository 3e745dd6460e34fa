-- gcr-usage: the blob downloads of pull rules 1-3, one row each, with `new_pull` marking the
-- downloads that start a pull. The views image_pulls_daily, repository_bytes and top_clients
-- aggregate this one.
--
-- Rule 1: action = 'pull' (a content read of containers/images/sha256:... in a registry
--   bucket; never a HEAD), success (2xx or 304), a known repository; each request once
--   (registry_events_unique).
-- Rule 2: the image is the Referer's host, lower-cased (the `image` column's host part, here
--   `registry_host`), and the repository: the name the client asked for, not the bucket.
-- Rule 3: per (client_ip, image) in time order, a download starts a new pull when it comes
--   more than 5 minutes (time_micros difference > 300000000) after the previous download of
--   the same group; equal times and a gap of exactly 5 minutes stay in one pull.
-- Rule 4: `day` is the UTC day of the download; a pull counts on the day of its new_pull row.
-- Rule A (Artifact Registry audit rows, source_kind = 'audit_log'): the rows that make pulls
--   are the successful manifest reads (Docker-GetManifest: target = 'manifest'), not the layer
--   downloads, and not those of Google's own agents (caller_class
--   'google_internal_or_automation': see agent_pulls_daily); a client is the principal at its
--   address (`principal @ client_ip`), since many callers share a redacted address. Usage-log
--   rows (source_kind 'usage_log', or NULL in tables of earlier releases) are as before.
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.blob_downloads` AS
WITH downloads AS (
  SELECT
    LOWER(REGEXP_EXTRACT(image, r'^([^/]+)/')) AS registry_host,
    repository,
    IF(principal IS NULL, client_ip, CONCAT(principal, ' @ ', client_ip)) AS client_ip,
    client_family,
    time_micros,
    event_time,
    response_bytes,
    request_id
  FROM `${PROJECT}.${DATASET}.registry_events_unique`
  WHERE action = 'pull' AND success AND repository IS NOT NULL AND image IS NOT NULL
    AND (source_kind IS NULL OR source_kind = 'usage_log'
      OR (target = 'manifest' AND caller_class != 'google_internal_or_automation'))
),
ordered AS (
  SELECT
    *,
    LAG(time_micros) OVER (PARTITION BY client_ip, registry_host, repository ORDER BY time_micros) AS previous_micros
  FROM downloads
)
SELECT
  DATE(event_time) AS day,
  registry_host,
  repository,
  client_ip,
  client_family,
  time_micros,
  event_time,
  response_bytes,
  request_id,
  previous_micros IS NULL OR time_micros - previous_micros > 300000000 AS new_pull
FROM ordered;
