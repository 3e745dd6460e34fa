-- gcr-usage: Artifact Registry audit entries routed by a log sink straight into BigQuery (no
-- loader), read as `registry_events` rows: the same columns, names, order and types, so every
-- view over registry_events runs on it. Either point those views at it (a view
-- `registry_events` AS SELECT * FROM audit_sink_events, in a dataset of its own), or append it
-- to the events table: INSERT INTO registry_events SELECT * FROM audit_sink_events WHERE ...
--
-- Source: the sink's partitioned table ${SINK_DATASET}.cloudaudit_googleapis_com_data_access
-- (`gcloud logging sinks create ... --use-partitioned-tables`, see sql/README.md). For a
-- date-sharded sink (tables ..._YYYYMMDD) run views/audit_sink_events_sharded.sql first: it
-- makes a view shaped and named like the partitioned table, and this file, run with
-- SINK_DATASET set to that view's dataset, reads it. This file is the one home of the mapping.
--
-- The rules are those of the Rust classifier (crates/core/src/audit/classify.rs and reader.rs,
-- the audit-entry classification rules, checked against fixtures/audit/cases.json by
-- e2e/test_audit_sink.py):
-- - Entries: serviceName artifactregistry.googleapis.com only. What the reader counts as
--   malformed gives no row here either: no insertId or timestamp, no methodName, a
--   resourceName that is not projects/P/locations/L[/repositories/R[/...]] (a location alone:
--   calls such as ListRepositories, with no repository). (The sink's table
--   cannot hold the other malformed shapes: non-JSON lines, bad timestamps, wrong types.)
-- - Duplicates: an entry with the insertId and timestamp of another is kept once (the one
--   received first), across the whole table where the reader looks within one object.
-- - registry_host / project / repository / image: from resourceName; the dockerImages/IMAGE
--   part is percent-decoded (team%2Fapi -> team/api) and cut at its first @, : or /. Without
--   it the image path is the PATH of requestUrl (minus its P/R/ prefix, P/ for gcr.io
--   repositories). gcr.io, us.gcr.io, eu.gcr.io, asia.gcr.io repositories are their own host
--   (repository P/IMAGE), others L-docker.pkg.dev (P/R/IMAGE); Maven, npm, Python, Apt, Yum,
--   Go: L-FORMAT.pkg.dev, repository P/R.
-- - reference (Docker only): requestUrl's path read from the right, by its last segments
--   (PATH may hold components named manifests, blobs or tags): /v2/PATH/tags/list and
--   /v2/PATH/blobs/uploads[/ID] name none, /v2/PATH/manifests/REF a tag or digest REF (even
--   one named uploads or list), /v2/PATH/blobs/DIGEST the digest. digest: reference when it
--   starts with sha256:.
-- - artifact_format / target / action: from methodName, old names included
--   (Docker-EmptyTarBlob = ServeBlob, -GetEmptyTags = GetTags, -HeadEmptyTarBlob = HeadBlob).
-- - success: status.code absent or 0. status: the HTTP status of the gRPC code
--   (google/rpc/code.proto's mapping, others 500). method: request.requestMethod or ''.
-- - user_agent: callerSuppliedUserAgent trimmed, every trailing ,gzip(gfe) removed, '' when
--   absent. client_family / client_version: the product tokens of user_agent.rs, same
--   priority and boundaries (start, space, parentheses, comma, semicolon), ASCII-case-
--   insensitive names, the version's leading v dropped before a digit. One difference: before
--   matching, U+212A (Kelvin sign) and U+017F (long s) are replaced by U+FFFD, because the
--   regular expressions' case folding would take them for k and s, so a version token
--   holding one of them reads U+FFFD there.
-- - principal: principalEmail unless empty, else principalSubject. caller_class:
--   google_internal_or_automation for Container Analysis, Cloud Build and service-N@gcp-sa-*
--   agents and ContainerAnalysis user agents, workload for other *.gserviceaccount.com,
--   end_user otherwise. client_ip: callerIp as written ('private', 'gce-internal-ip' kept).
-- - request_id: insertId. source_kind 'audit_log'. bucket, object: NULL. request_bytes,
--   response_bytes, time_taken_micros: 0 (audit entries carry no sizes). invalid_utf8: FALSE.
--   source_bucket / source_object / source_generation / source_row / source_line: NULL (there
--   is no sink object: those name the object the loader read).
-- Limits of SQL: a percent-decoded image that is not UTF-8 has its bad bytes replaced as
-- SAFE_CONVERT_BYTES_TO_STRING does (the reader: as String::from_utf8_lossy does).
--
-- Cost: event_time is the sink table's partitioning column `timestamp`, passed through
-- unchanged and a key of the deduplication's PARTITION BY, so a filter on it should prune
-- partitions: check with a dry run (bytes estimate). Only the columns named here are read.
-- The JSON paths are written '\x24.field' (\x24 is the dollar sign, which these templates
-- must not contain).
--
-- Placeholders: ${PROJECT}, ${DATASET} (the view's dataset), ${SINK_DATASET} (the sink's
-- destination dataset); see sql/README.md.

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.audit_sink_events` AS
WITH entries AS (
  SELECT
    insertId AS insert_id,
    `timestamp` AS entry_time,
    protopayload_auditlog.methodName AS method_name,
    protopayload_auditlog.resourceName AS resource_name,
    COALESCE(protopayload_auditlog.status.code, 0) AS code,
    protopayload_auditlog.authenticationInfo.principalEmail AS principal_email,
    protopayload_auditlog.authenticationInfo.principalSubject AS principal_subject,
    COALESCE(protopayload_auditlog.requestMetadata.callerIp, '') AS client_ip,
    COALESCE(protopayload_auditlog.requestMetadata.callerSuppliedUserAgent, '') AS raw_user_agent,
    JSON_VALUE(protopayload_auditlog.requestJson, '\x24.requestUrl') AS request_url,
    COALESCE(JSON_VALUE(protopayload_auditlog.requestJson, '\x24.requestMethod'), '') AS method
  FROM `${PROJECT}.${SINK_DATASET}.cloudaudit_googleapis_com_data_access`
  WHERE protopayload_auditlog.serviceName = 'artifactregistry.googleapis.com'
    AND insertId IS NOT NULL
    AND `timestamp` IS NOT NULL
    AND protopayload_auditlog.methodName IS NOT NULL
    AND REGEXP_CONTAINS(CONCAT(protopayload_auditlog.resourceName, '#'),
      r'^projects/[^/]+/locations/[^/]+(/repositories/[^/]|#)')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY insertId, `timestamp` ORDER BY receiveTimestamp) = 1
),
parsed AS (
  SELECT
    *,
    REGEXP_EXTRACT(resource_name, r'^projects/([^/]+)/') AS project,
    REGEXP_EXTRACT(CONCAT(resource_name, '/'), r'^projects/[^/]+/locations/([^/]+)/') AS location,
    REGEXP_EXTRACT(resource_name, r'^projects/[^/]+/locations/[^/]+/repositories/([^/]+)') AS repository_id,
    NULLIF(REGEXP_EXTRACT(resource_name,
      r'^projects/[^/]+/locations/[^/]+/repositories/[^/]+/dockerImages/([^@:/]*)'), '') AS encoded_image,
    STARTS_WITH(method_name, 'Docker-') AS is_docker,
    SUBSTR(method_name, 8) AS docker_method,
    STARTS_WITH(method_name, 'google.devtools.artifactregistry.') AS is_rpc,
    REGEXP_REPLACE(method_name, r'(?s)^.*\.', '') AS rpc,
    REGEXP_EXTRACT(method_name, r'^([^-]*)') AS format_prefix,
    IF(STRPOS(method_name, '-') > 0, SUBSTR(method_name, STRPOS(method_name, '-') + 1), '') AS format_method,
    -- the URL's path (up to the first ? or #) after /v2/, NULL for another path
    REGEXP_EXTRACT(COALESCE(request_url, ''), r'^/v2/([^?#]*)') AS url_rest,
    REVERSE(REGEXP_REPLACE(REVERSE(REGEXP_REPLACE(raw_user_agent, r'^[\s\p{Z}\x0B\x{85}]+', '')),
      r'^(?:[\s\p{Z}\x0B\x{85}]|\)efg\(pizg,)+', '')) AS user_agent,
    COALESCE(NULLIF(principal_email, ''), principal_subject) AS principal
  FROM entries
),
decoded AS (
  SELECT
    *,
    -- percent-decoding: the text before the first %, then per %XX one byte (else a literal %)
    (SELECT STRING_AGG(
        IF(off = 0, CAST(part AS BYTES),
          IF(REGEXP_CONTAINS(part, r'^[0-9A-Fa-f]{2}'),
            CONCAT(FROM_HEX(SUBSTR(part, 1, 2)), CAST(SUBSTR(part, 3) AS BYTES)),
            CAST(CONCAT('%', part) AS BYTES))),
        b'' ORDER BY off)
      FROM UNNEST(SPLIT(encoded_image, '%')) AS part WITH OFFSET AS off) AS image_bytes,
    -- read from the right: PATH/tags/list, else the last segment and what comes before it
    REGEXP_EXTRACT(CONCAT(url_rest, '#'), r'(?s)^(.*)/tags/list#') AS tags_image,
    REGEXP_EXTRACT(CONCAT(url_rest, '#'), r'(?s)^(.*)/[^/]*#') AS url_head,
    REGEXP_EXTRACT(CONCAT(url_rest, '#'), r'(?s)/([^/]*)#') AS url_last,
    REPLACE(REPLACE(user_agent, '\u212A', '\uFFFD'), '\u017F', '\uFFFD') AS ua
  FROM parsed
),
tokens AS (
  SELECT
    *,
    SAFE_CONVERT_BYTES_TO_STRING(image_bytes) AS decoded_image,
    CASE
      WHEN is_docker THEN 'docker'
      WHEN is_rpc THEN IF(rpc = 'DownloadFile', 'generic', NULL)
      WHEN format_prefix IN ('Maven', 'Npm', 'Python', 'Apt', 'Yum', 'Go') THEN LOWER(format_prefix)
    END AS artifact_format,
    repository_id IN ('gcr.io', 'us.gcr.io', 'eu.gcr.io', 'asia.gcr.io') AS gcr,
    -- PATH/blobs/uploads[/ID], PATH/manifests/REF, PATH/blobs/DIGEST (the suffixes exclude each other)
    COALESCE(REGEXP_EXTRACT(CONCAT(url_head, '#'), r'(?s)^(.*)/blobs/uploads#'),
      IF(url_last = 'uploads', REGEXP_EXTRACT(CONCAT(url_head, '#'), r'(?s)^(.*)/blobs#'), NULL)) AS upload_image,
    COALESCE(REGEXP_EXTRACT(CONCAT(url_head, '#'), r'(?s)^(.*)/manifests#'),
      REGEXP_EXTRACT(CONCAT(url_head, '#'), r'(?s)^(.*)/blobs#')) AS named_image,
    -- registry clients, in user_agent.rs's priority order: the version of NAME/VERSION
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:docker)/([^ (),\x3B]+)') AS docker_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:buildkit)/([^ (),\x3B]+)') AS buildkit_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:kaniko)/([^ (),\x3B]+)') AS kaniko_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:crane)/([^ (),\x3B]+)') AS crane_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:cri-o)/([^ (),\x3B]+)') AS crio_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:containerd)/([^ (),\x3B]+)') AS containerd_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:podman)/([^ (),\x3B]+)') AS podman_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:libpod)/([^ (),\x3B]+)') AS libpod_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:skopeo)/([^ (),\x3B]+)') AS skopeo_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:buildah)/([^ (),\x3B]+)') AS buildah_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:go-containerregistry)/([^ (),\x3B]+)') AS ggcr_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:gcloud)/([^ (),\x3B]+)') AS gcloud_v,
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])(?i:gsutil)/([^ (),\x3B]+)') AS gsutil_v,
    -- containers/image's own agent (case-sensitive name, as in user_agent.rs)
    REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])containers/([^ (),\x3B]+)') AS containers_v,
    -- browsers, most specific first: the whole NAME/VERSION token
    COALESCE(
      REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])((?i:Edg)/[^ (),\x3B]+)'),
      REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])((?i:OPR)/[^ (),\x3B]+)'),
      REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])((?i:Firefox)/[^ (),\x3B]+)'),
      REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])((?i:Chrome)/[^ (),\x3B]+)'),
      REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])((?i:Safari)/[^ (),\x3B]+)'),
      REGEXP_EXTRACT(ua, r'(?:^|[ (),\x3B])((?i:AppleWebKit)/[^ (),\x3B]+)')) AS browser_token,
    -- HTTP tools and libraries: the first such token, whole
    REGEXP_EXTRACT(ua,
      r'(?:^|[ (),\x3B])((?i:curl|wget|python-requests|python-urllib|python-httpx|aiohttp|go-http-client|java|okhttp|apache-httpclient|node-fetch|axios)/[^ (),\x3B]+)')
      AS http_token
  FROM decoded
),
images AS (
  SELECT
    *,
    IF(is_docker, COALESCE(tags_image, upload_image, named_image), NULL) AS url_image
  FROM tokens
),
classified AS (
  SELECT
    *,
    CASE
      WHEN artifact_format = 'docker' AND gcr THEN repository_id
      WHEN artifact_format IN ('docker', 'maven', 'npm', 'python', 'apt', 'yum', 'go')
        THEN CONCAT(location, '-', artifact_format, '.pkg.dev')
    END AS registry_host,
    CASE
      WHEN artifact_format = 'docker' AND encoded_image IS NOT NULL
        THEN CONCAT(project, IF(gcr, '', CONCAT('/', repository_id)), '/', decoded_image)
      WHEN artifact_format = 'docker' AND url_image IS NOT NULL
        THEN CONCAT(project, IF(gcr, '', CONCAT('/', repository_id)),
          COALESCE(CONCAT('/', NULLIF(IF(gcr, REGEXP_EXTRACT(url_image, r'(?s)^[^/]*/(.*)'),
            REGEXP_EXTRACT(url_image, r'(?s)^[^/]*/[^/]*/(.*)')), '')), ''))
      WHEN artifact_format IS NOT NULL AND artifact_format != 'docker' THEN CONCAT(project, '/', repository_id)
    END AS repository,
    IF(is_docker AND tags_image IS NULL AND upload_image IS NULL AND named_image IS NOT NULL,
      NULLIF(url_last, ''), NULL) AS reference,
    CASE
      WHEN is_docker THEN
        CASE
          WHEN docker_method IN ('ServeBlob', 'EmptyTarBlob', 'HeadBlob', 'HeadEmptyTarBlob', 'StartUpload',
                                 'CancelUpload', 'FinishUpload', 'DeleteBlob') THEN 'blob'
          WHEN docker_method IN ('GetTags', 'GetEmptyTags', 'Catalog', 'CreateOnPush') THEN 'repository'
          ELSE 'manifest'
        END
      WHEN artifact_format IS NOT NULL THEN 'package'
      ELSE 'repository'
    END AS target,
    CASE
      WHEN is_docker THEN
        CASE
          WHEN docker_method IN ('GetManifest', 'ServeBlob', 'EmptyTarBlob') THEN 'pull'
          WHEN docker_method IN ('PutManifest', 'FinishUpload') THEN 'push'
          WHEN docker_method IN ('DeleteManifest', 'DeleteTag', 'DeleteBlob') THEN 'delete'
          WHEN docker_method IN ('GetTags', 'GetEmptyTags', 'Catalog') THEN 'list'
          WHEN docker_method = 'CreateOnPush' THEN 'admin'
          ELSE 'other'
        END
      WHEN is_rpc THEN
        CASE
          WHEN rpc = 'DownloadFile' THEN 'download'
          WHEN STARTS_WITH(rpc, 'List') THEN 'list'
          WHEN REGEXP_CONTAINS(rpc, r'^(?:Create|Update|Delete|Set|Import|Batch)') THEN 'admin'
          ELSE 'other'
        END
      WHEN artifact_format IS NOT NULL THEN
        CASE
          WHEN format_method IN ('Artifact-Download', 'File-Download', 'InstallPackage', 'ViewPackageFile',
                                 'DownloadZipFile', 'DownloadModFile') THEN 'download'
          WHEN STRPOS(format_method, 'Upload') > 0 OR STRPOS(format_method, 'Publish') > 0 THEN 'upload'
          ELSE 'other'
        END
      ELSE 'other'
    END AS action,
    CASE
      WHEN user_agent = '' THEN 'none'
      WHEN user_agent = 'GCS Lifecycle Management' THEN 'lifecycle'
      WHEN docker_v IS NOT NULL THEN 'docker'
      WHEN buildkit_v IS NOT NULL THEN 'buildkit'
      WHEN kaniko_v IS NOT NULL THEN 'kaniko'
      WHEN crane_v IS NOT NULL THEN 'crane'
      WHEN crio_v IS NOT NULL THEN 'cri-o'
      WHEN containerd_v IS NOT NULL THEN 'containerd'
      WHEN podman_v IS NOT NULL OR libpod_v IS NOT NULL THEN 'podman'
      WHEN skopeo_v IS NOT NULL THEN 'skopeo'
      WHEN buildah_v IS NOT NULL THEN 'buildah'
      WHEN ggcr_v IS NOT NULL THEN 'go-containerregistry'
      WHEN gcloud_v IS NOT NULL THEN 'gcloud'
      WHEN gsutil_v IS NOT NULL THEN 'gsutil'
      WHEN containers_v IS NOT NULL AND STRPOS(user_agent, '(github.com/containers/image)') > 0 THEN 'containers-image'
      WHEN STARTS_WITH(user_agent, 'Mozilla/') THEN 'browser'
      WHEN http_token IS NOT NULL THEN 'http-client'
      ELSE 'other'
    END AS client_family
  FROM images
)
SELECT
  entry_time AS event_time,
  UNIX_MICROS(entry_time) AS time_micros,
  registry_host,
  project,
  repository,
  IF(registry_host IS NOT NULL AND repository IS NOT NULL, CONCAT(registry_host, '/', repository), NULL) AS image,
  IF(STARTS_WITH(reference, 'sha256:'), reference, NULL) AS digest,
  target,
  action,
  code = 0 AS success,
  CASE code
    WHEN 0 THEN 200 WHEN 1 THEN 499 WHEN 3 THEN 400 WHEN 4 THEN 504 WHEN 5 THEN 404 WHEN 6 THEN 409
    WHEN 7 THEN 403 WHEN 8 THEN 429 WHEN 9 THEN 400 WHEN 10 THEN 409 WHEN 11 THEN 400 WHEN 12 THEN 501
    WHEN 14 THEN 503 WHEN 16 THEN 401 ELSE 500
  END AS status,
  method,
  method_name AS operation,
  CAST(NULL AS STRING) AS bucket,
  CAST(NULL AS STRING) AS object,
  client_family,
  CASE
    WHEN client_family IN ('none', 'lifecycle', 'other') THEN NULL
    WHEN client_family = 'containers-image' THEN REGEXP_REPLACE(containers_v, r'^[vV]([0-9])', r'\1')
    WHEN client_family = 'browser' THEN browser_token
    WHEN client_family = 'http-client' THEN http_token
    ELSE REGEXP_REPLACE(COALESCE(docker_v, buildkit_v, kaniko_v, crane_v, crio_v, containerd_v, podman_v, libpod_v,
                                 skopeo_v, buildah_v, ggcr_v, gcloud_v, gsutil_v), r'^[vV]([0-9])', r'\1')
  END AS client_version,
  user_agent,
  CASE
    WHEN ENDS_WITH(principal, '@container-analysis.iam.gserviceaccount.com')
      OR ENDS_WITH(principal, '@cloudbuild.gserviceaccount.com')
      OR (STARTS_WITH(principal, 'service-') AND STRPOS(principal, '@gcp-sa-') > 0
        AND ENDS_WITH(principal, '.iam.gserviceaccount.com'))
      OR STARTS_WITH(user_agent, 'ContainerAnalysis') THEN 'google_internal_or_automation'
    WHEN ENDS_WITH(principal, '.gserviceaccount.com') THEN 'workload'
    ELSE 'end_user'
  END AS caller_class,
  client_ip,
  CAST(0 AS INT64) AS request_bytes,
  CAST(0 AS INT64) AS response_bytes,
  CAST(0 AS INT64) AS time_taken_micros,
  insert_id AS request_id,
  FALSE AS invalid_utf8,
  CAST(NULL AS STRING) AS source_bucket,
  CAST(NULL AS STRING) AS source_object,
  CAST(NULL AS INT64) AS source_generation,
  CAST(NULL AS INT64) AS source_row,
  CAST(NULL AS INT64) AS source_line,
  'audit_log' AS source_kind,
  principal,
  artifact_format,
  reference
FROM classified;
