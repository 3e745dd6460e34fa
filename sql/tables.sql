-- gcr-usage: dataset and tables for Cloud Storage usage and storage logs.
--
-- Placeholders: ${PROJECT} = BigQuery project id, ${DATASET} = dataset id
-- (default storageanalysis), ${LOCATION} = dataset location (default US; must match
-- GCR_USAGE_LOCATION of the loader). Substitute them before running, e.g. with
-- Python's string.Template(...).substitute(PROJECT=..., DATASET=..., LOCATION=...)
-- or `envsubst '${PROJECT} ${DATASET} ${LOCATION}'`, then run the statements with
-- `bq query --nouse_legacy_sql` or the BigQuery console.
--
-- The columns, types and modes are the official Cloud Storage log schemas
-- (cloud_storage_usage_schema_v0.json: every field NULLABLE;
--  cloud_storage_storage_schema_v0.json: both fields REQUIRED), in file order,
-- which is what a CSV load job maps by position. The loader sends the same schema
-- with every load job (createDisposition CREATE_IF_NEEDED), so running this script
-- is only required for the dataset; creating the tables up front is optional.
-- Statements end with ";" at the end of a line and no string holds a ";", so a
-- simple split on ";" (after dropping comment lines) yields the statements.

CREATE SCHEMA IF NOT EXISTS `${PROJECT}.${DATASET}`
OPTIONS (location = '${LOCATION}');

CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.usage` (
  time_micros INT64 OPTIONS (description = 'When the request completed, in microseconds since the Unix epoch'),
  c_ip STRING OPTIONS (description = 'Client IP address'),
  c_ip_type INT64 OPTIONS (description = '1 = IPv4, 2 = IPv6'),
  c_ip_region STRING OPTIONS (description = 'Reserved'),
  cs_method STRING OPTIONS (description = 'HTTP method'),
  cs_uri STRING OPTIONS (description = 'Request URI, percent-encoded'),
  sc_status INT64 OPTIONS (description = 'HTTP status returned'),
  cs_bytes INT64 OPTIONS (description = 'Request bytes'),
  sc_bytes INT64 OPTIONS (description = 'Response bytes'),
  time_taken_micros INT64 OPTIONS (description = 'Server time for the request, in microseconds'),
  cs_host STRING OPTIONS (description = 'Host of the request'),
  cs_referer STRING OPTIONS (description = 'HTTP Referer'),
  cs_user_agent STRING OPTIONS (description = 'User-Agent'),
  s_request_id STRING OPTIONS (description = 'Request id (a record can appear twice with the same id)'),
  cs_operation STRING OPTIONS (description = 'Operation name'),
  cs_bucket STRING OPTIONS (description = 'Bucket named in the request'),
  cs_object STRING OPTIONS (description = 'Object name, URL-decoded')
);

CREATE TABLE IF NOT EXISTS `${PROJECT}.${DATASET}.storage` (
  bucket STRING NOT NULL OPTIONS (description = 'Bucket name'),
  storage_byte_hours INT64 NOT NULL OPTIONS (description = 'Average byte-hours over the last 24 hours')
);
