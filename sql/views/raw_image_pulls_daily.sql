-- gcr-usage: image_pulls_daily over raw_registry_events (the raw `usage` table classified in SQL):
-- the same statement as sql/views/image_pulls_daily.sql with the source and view names prefixed raw_.
--
-- gcr-usage: pulls per image per UTC day (pull rule 4: a pull counts on the day of its first
-- blob download; blob downloads and bytes on the day of their own time, so a pull across
-- midnight counts once, on its first day, while its bytes are split over both days).
-- A day can show pulls = 0 with downloads: the tail of a pull that began the day before.
--
-- Columns: day, registry_host (the host the client asked, e.g. eu.gcr.io), repository,
-- pulls, blob_downloads, bytes_served (sum of response bytes), clients (distinct client IPs
-- with a blob download of the image that day).
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.raw_image_pulls_daily` AS
SELECT
  day,
  registry_host,
  repository,
  COUNTIF(new_pull) AS pulls,
  COUNT(*) AS blob_downloads,
  SUM(response_bytes) AS bytes_served,
  COUNT(DISTINCT client_ip) AS clients
FROM `${PROJECT}.${DATASET}.raw_blob_downloads`
GROUP BY day, registry_host, repository;
