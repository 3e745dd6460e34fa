-- gcr-usage: `registry_events` with each request counted once (pull rule 1).
--
-- The loader loads each log object exactly once, but Cloud Storage can write the same record
-- into two log objects (same s_request_id): this view keeps the first of them, as
-- `gcr-usage report` does across files. An empty (or NULL) request id never makes a row a
-- duplicate. Every other view over registry_events reads this one.
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.registry_events_unique` AS
SELECT *
FROM `${PROJECT}.${DATASET}.registry_events`
WHERE TRUE
QUALIFY COALESCE(request_id, '') = ''
  OR ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY time_micros, source_object, source_row) = 1;
