-- gcr-usage: the classification of crates/core/src/usage/classify.rs expressed in SQL over
-- the raw `usage` table, for users who load raw rows only (GCR_USAGE_MODE=raw). Same columns
-- as `registry_events`, so the views over events run on it unchanged (raw_blob_downloads,
-- raw_image_pulls_daily), and `INSERT INTO registry_events SELECT * FROM raw_registry_events`
-- back-fills the events table from raw rows.
--
-- Each request once: a record written twice (same s_request_id, in any log object) is kept
-- once; an empty request id never makes a row a duplicate.
-- registry_host / project: from the bucket name, [us.|eu.|asia.]artifacts.PROJECT.appspot.com
--   (domain-scoped: artifacts.PROJECT.DOMAIN.a.appspot.com -> DOMAIN:PROJECT).
-- digest: cs_object = containers/images/sha256:<64 hex> in a registry bucket (target 'blob').
-- repository / image: from a Referer https://HOST/v2/REPOSITORY/blobs/DIGEST (HOST gcr.io or
--   *.gcr.io, any case; REPOSITORY components of [a-z0-9._-]) whose DIGEST is the object's;
--   image = lower-cased HOST + '/' + REPOSITORY.
-- action: the first matching rule of classify.rs (HEAD/OPTIONS -> other; a known operation;
--   an admin-like operation name; an empty operation -> the method; a JSON-API read without
--   alt=media -> other; then verb x target: read -> pull / download, write -> push / upload).
-- success: status 2xx or 304.
-- Approximations (not used by the pull rule): client_family looks for the same tokens as
--   user_agent.rs (NAME/VERSION, same priority), but as regular expressions; client_version is
--   NULL; caller_class follows classify.rs's rules on that family. invalid_utf8 and the lineage
--   columns (source_*) are NULL: the raw table does not carry them.
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.raw_registry_events` AS
WITH unique_rows AS (
  SELECT *
  FROM `${PROJECT}.${DATASET}.usage`
  WHERE TRUE
  QUALIFY COALESCE(s_request_id, '') = ''
    OR ROW_NUMBER() OVER (PARTITION BY s_request_id ORDER BY time_micros) = 1
),
parsed AS (
  SELECT
    time_micros,
    c_ip,
    sc_status,
    cs_bytes,
    sc_bytes,
    time_taken_micros,
    s_request_id,
    COALESCE(cs_method, '') AS method,
    COALESCE(cs_operation, '') AS operation,
    COALESCE(cs_bucket, '') AS bucket,
    COALESCE(cs_object, '') AS object,
    COALESCE(cs_referer, '') AS referer,
    REGEXP_EXTRACT(COALESCE(cs_uri, ''), r'^([^?]*)') AS uri_path,
    COALESCE(REGEXP_EXTRACT(cs_uri, r'\?(.*)'), '') AS uri_query,
    REVERSE(REGEXP_REPLACE(REVERSE(TRIM(COALESCE(cs_user_agent, ''))), r'^(?:\)efg\(pizg,\s*)+', '')) AS user_agent,
    REGEXP_CONTAINS(CONCAT(COALESCE(cs_bucket, ''), '/'),
      r'^(?:(?:us|eu|asia)\.)?artifacts\.[a-z0-9-]+(?:\.[a-z0-9-]+(?:\.[a-z0-9-]+)+\.a)?\.appspot\.com/') AS is_registry
  FROM unique_rows
),
registry AS (
  SELECT
    *,
    CASE
      WHEN NOT is_registry THEN NULL
      WHEN STARTS_WITH(bucket, 'us.') THEN 'us.gcr.io'
      WHEN STARTS_WITH(bucket, 'eu.') THEN 'eu.gcr.io'
      WHEN STARTS_WITH(bucket, 'asia.') THEN 'asia.gcr.io'
      ELSE 'gcr.io'
    END AS registry_host,
    CASE
      WHEN NOT is_registry THEN NULL
      WHEN REGEXP_CONTAINS(CONCAT(bucket, '/'), r'^(?:(?:us|eu|asia)\.)?artifacts\.[a-z0-9-]+\.appspot\.com/')
        THEN REGEXP_EXTRACT(CONCAT(bucket, '/'), r'artifacts\.([a-z0-9-]+)\.appspot\.com/')
      ELSE CONCAT(REGEXP_EXTRACT(CONCAT(bucket, '/'), r'artifacts\.[a-z0-9-]+\.(.+)\.a\.appspot\.com/'), ':',
                  REGEXP_EXTRACT(bucket, r'artifacts\.([a-z0-9-]+)\.'))
    END AS project,
    IF(is_registry AND LENGTH(object) = 89, REGEXP_EXTRACT(object, r'^containers/images/(sha256:[0-9a-f]{64})'), NULL) AS digest,
    REGEXP_EXTRACT(CONCAT(referer, '#'),
      r'^https?://((?i:[a-z0-9.-]+\.)?(?i:gcr\.io))/v2/[a-z0-9._-]+(?:/[a-z0-9._-]+)*/blobs/sha256:[0-9a-f]{64}[?#]') AS referer_host,
    REGEXP_EXTRACT(CONCAT(referer, '#'),
      r'^https?://(?i:[a-z0-9.-]+\.)?(?i:gcr\.io)/v2/([a-z0-9._-]+(?:/[a-z0-9._-]+)*)/blobs/sha256:[0-9a-f]{64}[?#]') AS referer_repository,
    REGEXP_EXTRACT(CONCAT(referer, '#'),
      r'^https?://(?i:[a-z0-9.-]+\.)?(?i:gcr\.io)/v2/[a-z0-9._-]+(?:/[a-z0-9._-]+)*/blobs/(sha256:[0-9a-f]{64})[?#]') AS referer_digest
  FROM parsed
),
targeted AS (
  SELECT
    *,
    CASE WHEN object = '' THEN 'bucket' WHEN digest IS NOT NULL THEN 'blob' ELSE 'object' END AS target,
    CASE
      WHEN user_agent = '' THEN 'none'
      WHEN user_agent = 'GCS Lifecycle Management' THEN 'lifecycle'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])docker/') THEN 'docker'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])buildkit/') THEN 'buildkit'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])kaniko/') THEN 'kaniko'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])crane/') THEN 'crane'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])cri-o/') THEN 'cri-o'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])containerd/') THEN 'containerd'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])(?:podman|libpod)/') THEN 'podman'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])skopeo/') THEN 'skopeo'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])buildah/') THEN 'buildah'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])go-containerregistry/') THEN 'go-containerregistry'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])gcloud/') THEN 'gcloud'
      WHEN REGEXP_CONTAINS(user_agent, r'(?i)(?:^|[\s(\x3B,])gsutil/') THEN 'gsutil'
      WHEN REGEXP_CONTAINS(user_agent, r'(?:^|[\s(\x3B,])containers/')
        AND STRPOS(user_agent, '(github.com/containers/image)') > 0 THEN 'containers-image'
      WHEN STARTS_WITH(user_agent, 'Mozilla/') THEN 'browser'
      WHEN REGEXP_CONTAINS(CONCAT(user_agent, ' '),
        r'(?i)(?:^|[\s(\x3B,])(?:curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|java|okhttp|apache-httpclient|node-fetch|axios)[/\s\x3B)]')
        THEN 'http-client'
      ELSE 'other'
    END AS client_family,
    CASE
      WHEN method IN ('HEAD', 'OPTIONS') THEN 'other'
      WHEN operation != '' THEN
        CASE
          WHEN operation IN ('GET_Object', 'storage.objects.get') THEN 'read'
          WHEN operation IN ('GET_Object_Metadata', 'HEAD_Object') THEN 'metadata'
          WHEN operation IN ('PUT_Object', 'POST_Object', 'COPY_Object', 'COMPOSE_Object', 'REWRITE_Object',
                             'storage.objects.insert', 'storage.objects.compose', 'storage.objects.copy',
                             'storage.objects.rewrite') THEN 'write'
          WHEN operation IN ('DELETE_Object', 'storage.objects.delete') THEN 'delete'
          WHEN operation IN ('LIST_Objects', 'storage.objects.list') THEN 'list'
          WHEN operation IN ('PATCH_Object', 'UPDATE_Object', 'storage.objects.patch', 'storage.objects.update')
            THEN 'admin'
          WHEN REGEXP_CONTAINS(LOWER(operation), r'bucket|acl|iam|accesscontrol|notification|hmac|retention|policy')
            THEN 'admin'
          ELSE 'other'
        END
      WHEN method = 'GET' AND object = '' THEN
        CASE
          WHEN STARTS_WITH(uri_path, '/storage/v1/b/')
            THEN IF(REGEXP_CONTAINS(CONCAT(uri_path, '?'), r'^/storage/v1/b/.*/o/*\?'), 'list', 'admin')
          WHEN REGEXP_CONTAINS(CONCAT('&', uri_query, '&'),
            r'&(?:acl|billing|cors|encryptionConfig|iam|lifecycle|location|logging|storageClass|tagging|versioning|website)[=&]')
            THEN 'admin'
          ELSE 'list'
        END
      WHEN method = 'GET' THEN 'read'
      WHEN method IN ('PUT', 'POST') THEN 'write'
      WHEN method = 'DELETE' THEN 'delete'
      WHEN method = 'PATCH' THEN 'admin'
      ELSE 'other'
    END AS verb
  FROM registry
),
classified AS (
  SELECT
    *,
    CASE
      WHEN verb = 'read' AND (STARTS_WITH(uri_path, '/storage/v1/') OR STARTS_WITH(uri_path, '/download/storage/v1/'))
        AND STRPOS(CONCAT('&', uri_query, '&'), '&alt=media&') = 0 THEN 'other'
      WHEN verb = 'read' AND target = 'blob' THEN 'pull'
      WHEN verb = 'read' AND target = 'object' THEN 'download'
      WHEN verb = 'write' AND target = 'blob' THEN 'push'
      WHEN verb = 'write' AND target = 'object' THEN 'upload'
      WHEN verb IN ('write', 'delete', 'admin') AND target = 'bucket' THEN 'admin'
      WHEN verb = 'delete' THEN 'delete'
      WHEN verb = 'list' THEN 'list'
      WHEN verb = 'admin' THEN 'admin'
      ELSE 'other'
    END AS action,
    IF(digest IS NOT NULL AND referer_digest = digest, referer_repository, NULL) AS repository
  FROM targeted
)
SELECT
  TIMESTAMP_MICROS(time_micros) AS event_time,
  time_micros,
  registry_host,
  project,
  repository,
  IF(repository IS NOT NULL, CONCAT(LOWER(referer_host), '/', repository), NULL) AS image,
  digest,
  target,
  action,
  (sc_status BETWEEN 200 AND 299) OR sc_status = 304 AS success,
  sc_status AS status,
  method,
  operation,
  bucket,
  NULLIF(object, '') AS object,
  client_family,
  CAST(NULL AS STRING) AS client_version,
  user_agent,
  CASE
    WHEN client_family = 'lifecycle' THEN 'google_internal_or_automation'
    WHEN action IN ('admin', 'list') THEN 'owner_admin'
    WHEN client_family IN ('gcloud', 'gsutil') AND is_registry THEN 'owner_admin'
    WHEN client_family = 'browser' AND (STARTS_WITH(referer, 'https://console.cloud.google.com/')
      OR STARTS_WITH(referer, 'https://console.developers.google.com/')) THEN 'owner_admin'
    WHEN client_family IN ('http-client', 'none') AND target = 'blob' THEN 'google_internal_or_automation'
    ELSE 'end_user'
  END AS caller_class,
  c_ip AS client_ip,
  cs_bytes AS request_bytes,
  sc_bytes AS response_bytes,
  time_taken_micros,
  s_request_id AS request_id,
  CAST(NULL AS BOOL) AS invalid_utf8,
  CAST(NULL AS STRING) AS source_bucket,
  CAST(NULL AS STRING) AS source_object,
  CAST(NULL AS INT64) AS source_generation,
  CAST(NULL AS INT64) AS source_row,
  CAST(NULL AS INT64) AS source_line,
  'usage_log' AS source_kind,
  CAST(NULL AS STRING) AS principal,
  IF(registry_host IS NOT NULL, 'docker', NULL) AS artifact_format,
  CAST(NULL AS STRING) AS reference
FROM classified;
