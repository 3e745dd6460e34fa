-- gcr-usage: the `registry_events` table, one row per classified usage-log row or Artifact
-- Registry audit entry (a `RegistryEvent` of crates/core/src/registry_event.rs, loaded as
-- newline-delimited JSON; the columns are the event's fields, in the same order).
--
-- Placeholders: ${PROJECT} = BigQuery project id, ${DATASET} = dataset id (see
-- sql/tables.sql for the convention and how to substitute them).
--
-- PARTITION BY DATE(event_time): every question is asked over a range of days ("pulls per
-- day", "last 30 days"), so a filter on event_time prunes whole partitions and a query
-- scans (and is billed for) only the days it asks about.
-- CLUSTER BY registry_host, repository, client_ip: inside a day the views filter and group
-- by image (registry host + repository) and then by client (the pull rule partitions by
-- client and image), so blocks sorted on these columns are skipped for one-image or
-- one-registry queries and the grouping reads co-located rows. registry_host first: it has
-- four values and splits the registries; repository second: most selective per image.
-- Statements end with ";" at the end of a line and no string holds a ";".

CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.registry_events` (
  event_time TIMESTAMP OPTIONS (description = 'When the request completed (time_micros as a TIMESTAMP)'),
  time_micros INT64 OPTIONS (description = 'When the request completed, in microseconds since the Unix epoch'),
  registry_host STRING OPTIONS (description = 'gcr.io, us.gcr.io, eu.gcr.io or asia.gcr.io when the bucket is a registry bucket'),
  project STRING OPTIONS (description = 'Project of the registry bucket'),
  repository STRING OPTIONS (description = 'Full repository path from the Referer, for a blob request whose Referer names the same digest'),
  image STRING OPTIONS (description = 'HOST/REPOSITORY as the client named it (Referer host, lower-cased)'),
  digest STRING OPTIONS (description = 'sha256:... of a blob object'),
  target STRING OPTIONS (description = 'blob, object or bucket'),
  action STRING OPTIONS (description = 'pull, push, download, upload, delete, list, admin or other'),
  success BOOL OPTIONS (description = 'Status 2xx or 304'),
  status INT64 OPTIONS (description = 'HTTP status'),
  method STRING OPTIONS (description = 'HTTP method'),
  operation STRING OPTIONS (description = 'cs_operation'),
  bucket STRING OPTIONS (description = 'cs_bucket'),
  object STRING OPTIONS (description = 'cs_object, NULL for bucket-level requests'),
  client_family STRING OPTIONS (description = 'docker, containerd, crane, ... parsed from the user agent'),
  client_version STRING OPTIONS (description = 'Version token of the client'),
  user_agent STRING OPTIONS (description = 'User agent without the ,gzip(gfe) suffix'),
  caller_class STRING OPTIONS (description = 'end_user, google_internal_or_automation or owner_admin (heuristic)'),
  client_ip STRING OPTIONS (description = 'c_ip'),
  request_bytes INT64 OPTIONS (description = 'cs_bytes: what the client sent'),
  response_bytes INT64 OPTIONS (description = 'sc_bytes: what the server sent'),
  time_taken_micros INT64 OPTIONS (description = 'Server time for the request, in microseconds'),
  request_id STRING OPTIONS (description = 's_request_id'),
  invalid_utf8 BOOL OPTIONS (description = 'Some text in the row was invalid UTF-8 and was replaced'),
  source_bucket STRING OPTIONS (description = 'Bucket of the log object'),
  source_object STRING OPTIONS (description = 'The log object'),
  source_generation INT64 OPTIONS (description = 'Generation of the log object'),
  source_row INT64 OPTIONS (description = 'Data record number within the log object (1-based)'),
  source_line INT64 OPTIONS (description = 'Line number of the record within the log object'),
  -- Added with the Artifact Registry audit-log source. New columns go last: a table created by
  -- an earlier release gets them from the next load (schemaUpdateOptions ALLOW_FIELD_ADDITION).
  source_kind STRING OPTIONS (description = 'usage_log (Cloud Storage usage log) or audit_log (Artifact Registry audit entry)'),
  principal STRING OPTIONS (description = 'Authenticated principal of an audit entry (NULL for usage-log rows)'),
  artifact_format STRING OPTIONS (description = 'docker, maven, npm, python, apt, yum, go or generic'),
  reference STRING OPTIONS (description = 'Tag or digest the request named (audit entries, from request.requestUrl)')
)
PARTITION BY DATE(event_time)
CLUSTER BY registry_host, repository, client_ip
OPTIONS (description = 'gcr-usage: classified registry requests from usage logs and audit logs (one RegistryEvent per row)');
