"""The review studio behind `app.py`, as plain Python that tests can call without a browser.

- `studio.Studio`: state and actions (caption an upload, open / navigate items, generate missing
  captions, save reviews, export, query the evaluation table);
- `models.ModelPool`: lazily loaded captioners, load failures become card messages, cards that
  fill word by word (`stream_cards`), a note on models that cannot fit in memory;
- `generation.GenerationLoop`: one thread per model that batches concurrent caption requests and
  streams each its own words (`MEDCAP_MAX_BATCH`, `MEDCAP_BATCH_WAIT_MS`), with per-request stop;
- `comparison`: results CSV + dataset sample joined per image;
- `scores.ScoreBook`: per-caption scores from `medcap evaluate` output or computed on first use;
- `table.EvaluationTable`: server-side search / filter / sort / paging (30k rows stay on the server);
- `cards`, `highlight`, `views`: escaped HTML and the values each widget receives;
- `options.AppOptions`: the app-only settings (`MEDCAP_RESULTS`, `MEDCAP_EVALUATION`,
  `MEDCAP_SAMPLE`, `MEDCAP_DATASET_LABEL`, upload limits, temp-file lifetime); everything else
  is `medcap.config.Settings`;
- `identity`: who a reviewer is (a signed-in Hugging Face account on a Space, else a typed name);
- `launch`: the `gr.Blocks` / `launch()` keyword arguments (upload size cap, cache sweeping);
- `tempfiles`: uploads deleted once decoded, old exports pruned.
"""
