"""Keyboard-first reviewing on the Compare tab: one script in the page head (Gradio 6 takes
``head`` at ``launch``), driving the ordinary buttons and inputs so every key does exactly what
a click would (the server sees the same events, the API stays the only way in).

Keys (see `medcap.app.guidelines.keys_markdown`): 1-4 verdict of the highlighted caption card,
category letters toggle its categories, ←/→ move the highlight, Ctrl+Enter saves it, J/↓ asks the
queue for the next item, K/↑ goes back to the item shown before. Keys do nothing while the
focus is in a text box, except Ctrl+Enter, and Esc, which leaves the box. The key map comes from the page (`#mc-keymap`), so
configured categories keep their own letters.
"""

from __future__ import annotations

import html

from medcap.app.guidelines import KeyMap

KEYBOARD_JS = r"""
(() => {
  if (window.medcapKeys) return;
  window.medcapKeys = true;
  let focus = 0;
  const back = [];
  const slots = () => [...document.querySelectorAll('[id^="slot-"]')]
    .filter(el => /^slot-\d+$/.test(el.id) && el.offsetParent !== null);
  const keymap = () => {
    const el = document.getElementById('mc-keymap');
    try { return JSON.parse(el ? el.dataset.keys : '{}'); } catch (e) { return {}; }
  };
  const mark = () => slots().forEach((el, i) => el.classList.toggle('mc-focused', i === focus));
  const slotPart = (part) => document.getElementById(`${part}-${slots()[focus]?.id.slice(5)}`);
  const typing = (t) => t && (t.isContentEditable || t.tagName === 'TEXTAREA' || t.tagName === 'SELECT'
    || (t.tagName === 'INPUT' && !['checkbox', 'radio', 'button'].includes(t.type)));
  const click = (id) => { const b = document.getElementById(id); if (b) { b.click(); return true; } return false; };
  const currentId = () => document.querySelector('#image-id input, #image-id textarea')?.value || '';
  const toggleNth = (part, n) => {
    const boxes = slotPart(part)?.querySelectorAll('input');
    if (boxes && boxes[n]) boxes[n].click();
  };
  const openItem = (id) => {
    const box = document.querySelector('#image-id input, #image-id textarea');
    if (!box || !id) return;
    box.value = id;
    box.dispatchEvent(new Event('input', { bubbles: true }));
    setTimeout(() => click('open-button'), 50);
  };
  const reset = () => { focus = 0; setTimeout(mark, 300); };
  document.addEventListener('keydown', (e) => {
    if (!slots().length) return;  // not on the Compare tab
    const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    if ((e.ctrlKey || e.metaKey) && key === 'Enter') {
      e.preventDefault();
      const save = slotPart('save');
      if (save) {
        save.click();
        focus = Math.min(focus + 1, slots().length - 1);
        mark();
      }
      return;
    }
    if (key === 'Escape' && typing(e.target)) { e.target.blur(); return; }  // leave a text box
    if (e.ctrlKey || e.metaKey || e.altKey || typing(e.target)) return;
    const keys = keymap();
    const verdict = (keys.verdicts || []).indexOf(key);
    const category = (keys.categories || []).indexOf(key);
    if (verdict >= 0) toggleNth('verdict', verdict);
    else if (category >= 0 && key !== '') toggleNth('categories', category);
    else if (keys.significant && key === keys.significant) toggleNth('significant', 0);
    else if (key === 'ArrowRight') { focus = Math.min(focus + 1, slots().length - 1); mark(); }
    else if (key === 'ArrowLeft') { focus = Math.max(focus - 1, 0); mark(); }
    else if (key === 'j' || key === 'ArrowDown') {
      const id = currentId();
      if (id) back.push(id);
      click('next-for-me'); reset();
    }
    else if (key === 'k' || key === 'ArrowUp') {
      let id = back.pop();
      while (id && id === currentId()) id = back.pop();
      openItem(id); reset();
    }
    else return;
    e.preventDefault();
  }, true);
  document.addEventListener('click', (e) => {
    const slot = e.target.closest && e.target.closest('[id^="slot-"]');
    const index = slot ? slots().indexOf(slot) : -1;
    if (index >= 0) { focus = index; mark(); }
    else if (e.target.closest && e.target.closest('#next-for-me, #open-button')) reset();
    else setTimeout(mark, 300);
  });
})();
"""

KEYBOARD_HEAD = f"<script>{KEYBOARD_JS}</script>"
"""For `launch(head=...)`."""


def keymap_html(keys: KeyMap) -> str:
    """The invisible element the script reads its key map from."""
    return f'<div id="mc-keymap" hidden data-keys="{html.escape(keys.as_json(), quote=True)}"></div>'
