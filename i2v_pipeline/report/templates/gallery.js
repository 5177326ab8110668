// Filters, grouping and lazy media for the i2v report: plain JavaScript, no network.
(function () {
  "use strict";
  var main = document.getElementById("cards");
  var tagSel = document.getElementById("f-tag");
  var statusSel = document.getElementById("f-status");
  var groupSel = document.getElementById("f-group");
  var shown = document.getElementById("shown");
  var cards = Array.prototype.map.call(main.querySelectorAll(".card"), function (el) {
    return { el: el, tags: JSON.parse(el.dataset.tags || "[]"), status: el.dataset.status,
      image: el.dataset.image, prompt: el.dataset.prompt };
  });

  // Posters and video metadata load only for cards near the viewport: a campaign of
  // thousands of videos must not open thousands of media players at once.
  function wake(card) {
    var v = card.querySelector("video");
    if (!v || v.dataset.awake) return;
    v.dataset.awake = "1";
    if (v.dataset.poster) v.poster = v.dataset.poster;
    v.preload = "metadata";
    v.load();
  }
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (seen) {
    seen.forEach(function (e) {
      if (e.isIntersecting) { observer.unobserve(e.target); wake(e.target); }
    });
  }, { rootMargin: "400px 0px" }) : null;
  cards.forEach(function (c) { if (observer) observer.observe(c.el); else wake(c.el); });

  function apply() {
    var tag = tagSel.value, status = statusSel.value, n = 0;
    cards.forEach(function (c) {
      var ok = (!tag || c.tags.indexOf(tag) >= 0) && (!status || c.status === status);
      c.el.hidden = !ok;
      if (ok) n += 1;
    });
    Array.prototype.forEach.call(main.querySelectorAll(".group"), function (g) {
      g.hidden = !g.querySelector(".card:not([hidden])");
    });
    shown.textContent = n + " of " + cards.length + " videos shown";
  }

  function regroup() {
    var by = groupSel.value, frag = document.createDocumentFragment(), groups = new Map();
    cards.forEach(function (c) {
      if (!by) { frag.appendChild(c.el); return; }
      var key = c[by], box = groups.get(key);
      if (!box) {
        var section = document.createElement("section");
        section.className = "group";
        section.dataset.key = key;
        var h = document.createElement("h2");
        h.textContent = by + ": " + key;
        box = document.createElement("div");
        box.className = "grid";
        section.appendChild(h);
        section.appendChild(box);
        frag.appendChild(section);
        groups.set(key, box);
      }
      box.appendChild(c.el);
    });
    main.replaceChildren(frag);
    apply();
  }

  tagSel.addEventListener("change", apply);
  statusSel.addEventListener("change", apply);
  groupSel.addEventListener("change", regroup);
  if (groupSel.value) regroup(); else apply();
  window.i2vReport = { apply: apply, regroup: regroup, wake: wake };
})();
