-- gcr-usage: manifest reads by Google's own agents per image per UTC day, from Artifact
-- Registry audit rows (rule A): the vulnerability scanner (service-N@container-analysis...),
-- Cloud Build (N@cloudbuild.gserviceaccount.com) and other service agents read images too, and
-- would otherwise look like pulls. image_pulls_daily leaves them out; this view reports them.
--
-- Columns: day, registry_host, repository, principal, manifest_reads.
--
-- Placeholders: ${PROJECT}, ${DATASET} (see sql/README.md).

CREATE OR REPLACE VIEW `${PROJECT}.${DATASET}.agent_pulls_daily` AS
WITH reads AS (
  SELECT
    DATE(event_time) AS day,
    LOWER(REGEXP_EXTRACT(image, r'^([^/]+)/')) AS registry_host,
    repository,
    principal
  FROM `${PROJECT}.${DATASET}.registry_events_unique`
  WHERE source_kind = 'audit_log' AND action = 'pull' AND target = 'manifest' AND success
    AND caller_class = 'google_internal_or_automation' AND image IS NOT NULL
)
SELECT day, registry_host, repository, principal, COUNT(*) AS manifest_reads
FROM reads
GROUP BY day, registry_host, repository, principal;
