-- gcr-usage: per-image pull statistics over the raw `usage` table.
--
-- Placeholders: ${PROJECT} = BigQuery project id, ${DATASET} = dataset id (see
-- sql/tables.sql for the convention). Valid BigQuery standard SQL; also runs on
-- local-bigquery (DuckDB-backed) as used by e2e/.
--
-- What counts as one blob download of an image:
--   * cs_method = 'GET' with a 2xx sc_status (HEADs, refusals and errors are not downloads);
--   * cs_object is a registry blob, `containers/images/sha256:<digest>` (cs_object is
--     already URL-decoded, unlike cs_uri);
--   * cs_referer is the registry URL the client was redirected from,
--     https://HOST/v2/REPOSITORY/blobs/sha256:<digest>, where HOST is gcr.io or any
--     regional/other gcr.io host (us.gcr.io, eu.gcr.io, asia.gcr.io, k8s.gcr.io, ...).
--     That referer is the only place that names the image: a blob shared by two
--     repositories is attributed to the repository the client asked for.
--   Rows without such a referer (non-Go clients, console downloads, the owner's JSON
--   API administration, lifecycle actions) are left out.
-- REPOSITORY is kept whole (`demo-project/team/api/server`), unlike the original
-- article's regex, which kept only the third path segment and only matched gcr.io.
-- Usage logs can hold the same record twice (same s_request_id), so each request is
-- counted once.

WITH blob_downloads AS (
  SELECT
    REGEXP_EXTRACT(cs_referer, r'^https://((?:[a-z0-9-]+\.)*gcr\.io)/v2/') AS registry_host,
    REGEXP_EXTRACT(cs_referer, r'^https://(?:[a-z0-9-]+\.)*gcr\.io/v2/([^?#]+)/blobs/sha256:[0-9a-f]{64}') AS repository,
    c_ip,
    sc_bytes,
    time_micros
  FROM `${PROJECT}.${DATASET}.usage`
  WHERE cs_method = 'GET'
    AND sc_status BETWEEN 200 AND 299
    AND STARTS_WITH(cs_object, 'containers/images/sha256:')
    AND REGEXP_CONTAINS(cs_referer, r'^https://(?:[a-z0-9-]+\.)*gcr\.io/v2/[^?#]+/blobs/sha256:[0-9a-f]{64}')
  -- Drop a record that the log service wrote twice.
  QUALIFY ROW_NUMBER() OVER (PARTITION BY s_request_id ORDER BY time_micros) = 1
)
SELECT
  registry_host,
  repository,
  COUNT(*) AS blob_downloads,
  SUM(sc_bytes) AS bytes_served,
  COUNT(DISTINCT c_ip) AS distinct_client_ips,
  TIMESTAMP_MICROS(MIN(time_micros)) AS first_seen,
  TIMESTAMP_MICROS(MAX(time_micros)) AS last_seen
FROM blob_downloads
GROUP BY registry_host, repository
ORDER BY blob_downloads DESC, registry_host, repository
