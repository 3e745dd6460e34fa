-- gcr-usage: pulling clients (client IPs with at least one blob download): pulls (over all
-- images), blob downloads, bytes served, distinct images, and the client families seen
-- (space-separated, in order of first download). Rank with ORDER BY pulls DESC or
-- bytes_served DESC and a LIMIT.
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.top_clients` AS
WITH per_client AS (
  SELECT
    client_ip,
    COUNTIF(new_pull) AS pulls,
    COUNT(*) AS blob_downloads,
    SUM(response_bytes) AS bytes_served,
    COUNT(DISTINCT CONCAT(registry_host, '/', repository)) AS images,
    MIN(event_time) AS first_seen,
    MAX(event_time) AS last_seen
  FROM `${PROJECT}.${DATASET}.blob_downloads`
  GROUP BY client_ip
),
families AS (
  SELECT client_ip, client_family, MIN(time_micros) AS first_micros
  FROM `${PROJECT}.${DATASET}.blob_downloads`
  GROUP BY client_ip, client_family
),
family_lists AS (
  SELECT client_ip, STRING_AGG(client_family, ' ' ORDER BY first_micros, client_family) AS client_families
  FROM families
  GROUP BY client_ip
)
SELECT
  per_client.client_ip,
  per_client.pulls,
  per_client.blob_downloads,
  per_client.bytes_served,
  per_client.images,
  family_lists.client_families,
  per_client.first_seen,
  per_client.last_seen
FROM per_client
LEFT JOIN family_lists ON family_lists.client_ip = per_client.client_ip;
