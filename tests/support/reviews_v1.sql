-- A reviews.sqlite written by medcap's v1 review store (commit 8791748), as
-- sqlite3's iterdump prints it; Dr Ada's final review is hidden under a later draft.
BEGIN TRANSACTION;
CREATE TABLE review_history (
    id                INTEGER PRIMARY KEY,
    review_id         INTEGER NOT NULL REFERENCES reviews (id),
    version           INTEGER NOT NULL,
    reviewer          TEXT NOT NULL,
    verdict           TEXT,
    corrected_caption TEXT NOT NULL,
    note              TEXT NOT NULL,
    status            TEXT NOT NULL,
    generated_caption TEXT NOT NULL,
    saved_at          TEXT NOT NULL,
    UNIQUE (review_id, version)
);
INSERT INTO "review_history" VALUES(1,1,1,'Dr Ada','major error','','wrong side','final','left lung mass','2026-11-21T10:00:00Z');
INSERT INTO "review_history" VALUES(2,1,2,'Dr Ada','minor error','','wrong side, small','final','left lung mass','2026-11-21T10:00:01Z');
INSERT INTO "review_history" VALUES(3,1,3,'Dr Ada',NULL,'','rethinking','draft','left lung mass','2026-11-21T10:00:02Z');
INSERT INTO "review_history" VALUES(4,2,1,'Dr Bo','correct','','','final','left lung mass','2026-11-21T10:00:03Z');
INSERT INTO "review_history" VALUES(5,3,1,'Dr Bo',NULL,'CT head','','draft','left lung mass','2026-11-21T10:00:04Z');
CREATE TABLE reviews (
    id                INTEGER PRIMARY KEY,
    dataset           TEXT NOT NULL,
    image_id          TEXT NOT NULL,
    model             TEXT NOT NULL,
    reviewer          TEXT NOT NULL,
    reviewer_key      TEXT NOT NULL,
    verdict           TEXT,
    corrected_caption TEXT NOT NULL DEFAULT '',
    note              TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('draft', 'final')),
    version           INTEGER NOT NULL CHECK (version >= 1),
    generated_caption TEXT NOT NULL DEFAULT '',
    ground_truth      TEXT NOT NULL DEFAULT '',
    modality          TEXT NOT NULL DEFAULT '',
    scores_json       TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (dataset, image_id, model, reviewer_key)
);
INSERT INTO "reviews" VALUES(1,'roco-test','ROCO_001','blip','Dr Ada','dr ada',NULL,'','rethinking','draft',3,'left lung mass','right lung mass','X-ray','{"bleu4": 0.5}','2026-11-21T10:00:00Z','2026-11-21T10:00:02Z');
INSERT INTO "reviews" VALUES(2,'roco-test','ROCO_001','blip','Dr Bo','dr bo','correct','','','final',1,'left lung mass','right lung mass','X-ray','{"bleu4": 0.5}','2026-11-21T10:00:03Z','2026-11-21T10:00:03Z');
INSERT INTO "reviews" VALUES(3,'roco-test','ROCO_002','qwen2-vl','Dr Bo','dr bo',NULL,'CT head','','draft',1,'left lung mass','right lung mass','X-ray','{"bleu4": 0.5}','2026-11-21T10:00:04Z','2026-11-21T10:00:04Z');
CREATE INDEX reviews_by_item ON reviews (dataset, image_id);
COMMIT;
PRAGMA user_version = 1;
