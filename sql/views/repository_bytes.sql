-- gcr-usage: per image (registry host + repository) over all time: pulls, blob downloads,
-- bytes served, distinct pulling clients, first and last download. The same numbers as the
-- "Images" section of `gcr-usage report`. Filter on `day` of blob_downloads for a period:
--   SELECT registry_host, repository, SUM(response_bytes) FROM ...blob_downloads
--   WHERE day >= DATE_SUB(CURRENT_DATE(), INTERVAL 30 DAY) GROUP BY 1, 2
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.repository_bytes` AS
SELECT
  registry_host,
  repository,
  COUNTIF(new_pull) AS pulls,
  COUNT(*) AS blob_downloads,
  SUM(response_bytes) AS bytes_served,
  COUNT(DISTINCT client_ip) AS clients,
  MIN(event_time) AS first_seen,
  MAX(event_time) AS last_seen
FROM `${PROJECT}.${DATASET}.blob_downloads`
GROUP BY registry_host, repository;
