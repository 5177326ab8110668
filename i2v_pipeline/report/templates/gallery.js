// Filters, grouping and lazy players for the i2v report: plain JavaScript, no network.
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

  // A card holds a link to its video (with a lazily loaded poster) until it nears the
  // viewport, and becomes one again when far away and untouched: thousands of <video>
  // elements, or media players, at once would freeze the page.
  var links = new WeakMap();
  function wake(card) {
    var a = card.querySelector("a.player");
    if (!a) return null;
    var v = document.createElement("video");
    v.controls = true;
    v.muted = true;
    v.playsInline = true;
    v.preload = "metadata";
    if (a.dataset.poster) v.poster = a.dataset.poster;
    v.src = a.getAttribute("href");
    links.set(v, a);
    a.replaceWith(v);
    return v;
  }
  function sleep(card) {
    var v = card.querySelector("video");
    if (!v || !links.has(v) || !v.paused || v.currentTime > 0) return;
    v.replaceWith(links.get(v));
    v.removeAttribute("src");
    v.load();  // releases the media player
  }
  var observer = "IntersectionObserver" in window ? new IntersectionObserver(function (seen) {
    seen.forEach(function (e) { if (e.isIntersecting) wake(e.target); else sleep(e.target); });
  }, { rootMargin: "800px 0px" }) : null;
  cards.forEach(function (c) { if (observer) observer.observe(c.el); else wake(c.el); });
  main.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("a.player");
    if (!a) return;
    e.preventDefault();
    var v = wake(a.closest(".card"));
    if (v) v.play();
  });

  function apply() {
    var tag = tagSel.value, status = statusSel.value, n = 0;
    cards.forEach(function (c) {
      var ok = (!tag || c.tags.indexOf(tag) >= 0) && (!status || c.status === status);
      if (c.el.hidden === ok) c.el.hidden = !ok;
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
