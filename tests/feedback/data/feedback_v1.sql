-- A feedback database made by the schema before memberships and token revocation
-- (rlfoundry commit f176cc7): projects alpha and beta (3 compare items each),
-- annotators ann and boss (admin) with tokens 'ann-token-v1' / 'boss-token-v1',
-- one judgment of ann in alpha and one open assignment of hers.
CREATE TABLE annotators (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	is_admin BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name), 
	UNIQUE (token_hash)
);
INSERT INTO "annotators" VALUES(1,'ann','a5d889264023a8360fa285a8d3185107bac52c6e95ba59eff08af43aef86eb35',0,'2026-12-03 21:59:00.039140');
INSERT INTO "annotators" VALUES(2,'boss','ad374f3087e3ea99e028fa2ec02405f3f5358d4f62be8d3300761b251b4e1d95',1,'2026-12-03 21:59:00.040083');
CREATE TABLE assignments (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	annotator_id INTEGER NOT NULL, 
	order_json TEXT NOT NULL, 
	assigned_at DATETIME NOT NULL, 
	done_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (item_id, annotator_id), 
	FOREIGN KEY(project_id) REFERENCES projects (id), 
	FOREIGN KEY(item_id) REFERENCES items (id), 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id)
);
INSERT INTO "assignments" VALUES(1,1,3,1,'[0, 1]','2026-12-03 21:59:00.050011','2026-12-03 21:59:00.052409');
INSERT INTO "assignments" VALUES(2,1,1,1,'[1, 0]','2026-12-03 21:59:00.057356',NULL);
CREATE TABLE items (
	id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	external_id VARCHAR(200) NOT NULL, 
	prompt TEXT NOT NULL, 
	n_responses INTEGER NOT NULL, 
	is_gold BOOLEAN NOT NULL, 
	gold_json TEXT, 
	n_assigned INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (project_id, external_id), 
	FOREIGN KEY(project_id) REFERENCES projects (id)
);
INSERT INTO "items" VALUES(1,1,'q0','Question 0?',2,0,NULL,1,'2026-12-03 21:59:00.033029');
INSERT INTO "items" VALUES(2,1,'q1','Question 1?',2,0,NULL,0,'2026-12-03 21:59:00.033039');
INSERT INTO "items" VALUES(3,1,'q2','Question 2?',2,0,NULL,1,'2026-12-03 21:59:00.033041');
INSERT INTO "items" VALUES(4,2,'q0','Question 0?',2,0,NULL,0,'2026-12-03 21:59:00.036977');
INSERT INTO "items" VALUES(5,2,'q1','Question 1?',2,0,NULL,0,'2026-12-03 21:59:00.036985');
INSERT INTO "items" VALUES(6,2,'q2','Question 2?',2,0,NULL,0,'2026-12-03 21:59:00.036987');
CREATE TABLE judgments (
	id INTEGER NOT NULL, 
	assignment_id INTEGER NOT NULL, 
	project_id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	annotator_id INTEGER NOT NULL, 
	label_json TEXT NOT NULL, 
	reason TEXT NOT NULL, 
	active_ms INTEGER, 
	wall_ms INTEGER NOT NULL, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (assignment_id), 
	UNIQUE (item_id, annotator_id), 
	FOREIGN KEY(assignment_id) REFERENCES assignments (id), 
	FOREIGN KEY(project_id) REFERENCES projects (id), 
	FOREIGN KEY(item_id) REFERENCES items (id), 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id)
);
INSERT INTO "judgments" VALUES(1,1,1,3,1,'0','old reason',NULL,2,'2026-12-03 21:59:00.052409','2026-12-03 21:59:00.052409');
CREATE TABLE projects (
	id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	overlap INTEGER NOT NULL, 
	gold_every INTEGER NOT NULL, 
	guidelines TEXT NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (name)
);
INSERT INTO "projects" VALUES(1,'alpha','compare',2,0,'','2026-12-03 21:59:00.029235');
INSERT INTO "projects" VALUES(2,'beta','compare',2,0,'','2026-12-03 21:59:00.035423');
CREATE TABLE responses (
	id INTEGER NOT NULL, 
	item_id INTEGER NOT NULL, 
	idx INTEGER NOT NULL, 
	text TEXT NOT NULL, 
	model VARCHAR(200), 
	PRIMARY KEY (id), 
	UNIQUE (item_id, idx), 
	FOREIGN KEY(item_id) REFERENCES items (id)
);
INSERT INTO "responses" VALUES(1,1,0,'0a',NULL);
INSERT INTO "responses" VALUES(2,1,1,'0b',NULL);
INSERT INTO "responses" VALUES(3,2,0,'1a',NULL);
INSERT INTO "responses" VALUES(4,2,1,'1b',NULL);
INSERT INTO "responses" VALUES(5,3,0,'2a',NULL);
INSERT INTO "responses" VALUES(6,3,1,'2b',NULL);
INSERT INTO "responses" VALUES(7,4,0,'0a',NULL);
INSERT INTO "responses" VALUES(8,4,1,'0b',NULL);
INSERT INTO "responses" VALUES(9,5,0,'1a',NULL);
INSERT INTO "responses" VALUES(10,5,1,'1b',NULL);
INSERT INTO "responses" VALUES(11,6,0,'2a',NULL);
INSERT INTO "responses" VALUES(12,6,1,'2b',NULL);
CREATE TABLE sessions (
	id INTEGER NOT NULL, 
	key_hash VARCHAR(64) NOT NULL, 
	annotator_id INTEGER NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (key_hash), 
	FOREIGN KEY(annotator_id) REFERENCES annotators (id)
);
CREATE INDEX ix_items_project_id ON items (project_id);
CREATE INDEX ix_items_open ON items (project_id, is_gold, n_assigned DESC, id);
CREATE INDEX ix_sessions_annotator_id ON sessions (annotator_id);
CREATE INDEX ix_responses_item_id ON responses (item_id);
CREATE INDEX ix_assignments_annotator_id ON assignments (annotator_id);
CREATE INDEX ix_assignments_mine ON assignments (annotator_id, project_id);
CREATE INDEX ix_assignments_project_id ON assignments (project_id);
CREATE UNIQUE INDEX uq_assignments_one_open ON assignments (project_id, annotator_id) WHERE done_at IS NULL;
CREATE INDEX ix_assignments_item_id ON assignments (item_id);
CREATE INDEX ix_judgments_item_id ON judgments (item_id);
CREATE INDEX ix_judgments_project_id ON judgments (project_id);
CREATE INDEX ix_judgments_annotator_id ON judgments (annotator_id);
