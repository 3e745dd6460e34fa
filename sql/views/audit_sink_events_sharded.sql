-- gcr-usage: the date-sharded form of a BigQuery log sink (no --use-partitioned-tables: one
-- table cloudaudit_googleapis_com_data_access_YYYYMMDD per UTC day) made to look like the
-- partitioned form, so that views/audit_sink_events.sql (the one home of the mapping to
-- registry_events columns) reads it unchanged.
--
-- This creates ${DATASET}.cloudaudit_googleapis_com_data_access, a view over every day's table
-- of ${SINK_DATASET} with the columns of the partitioned table (the shards have them all:
-- SELECT * of a wildcard table leaves _TABLE_SUFFIX out). Then create the events view with
-- SINK_DATASET set to ${DATASET}:
--   envsubst < sql/views/audit_sink_events_sharded.sql | bq query --nouse_legacy_sql
--   SINK_DATASET=DATASET_OF_THIS_VIEW envsubst < sql/views/audit_sink_events.sql | bq query --nouse_legacy_sql
-- (see sql/README.md). If ${DATASET} is the sink's own dataset and the sink is switched to
-- partitioned tables later, drop this view first: the sink's new table takes its name.
--
-- _TABLE_SUFFIX: only tables whose suffix is a date (8 digits) are read, so a table such as
-- cloudaudit_googleapis_com_data_access_backup is not mixed in. To scan fewer days on every
-- query, add a constant bound, e.g. AND _TABLE_SUFFIX >= '20240101' (BigQuery then opens only
-- those tables). Wildcard queries take the schema of the newest matching table.
--
-- Placeholders: ${PROJECT}, ${DATASET} (this view's dataset), ${SINK_DATASET} (the sink's
-- destination dataset); see sql/README.md.

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.cloudaudit_googleapis_com_data_access` AS
SELECT *
FROM `${PROJECT}.${SINK_DATASET}.cloudaudit_googleapis_com_data_access_*`
WHERE REGEXP_CONTAINS(CONCAT(_TABLE_SUFFIX, '#'), r'^[0-9]{8}#');
