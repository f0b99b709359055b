// chatops report: the exact value of a chart mark on hover or tap (the data-tip attribute),
// and every <details> opened before printing. Reads only attributes the page already has.
(function () {
  "use strict";
  var tip = document.createElement("div");
  tip.className = "tip";
  tip.setAttribute("role", "status");
  document.body.appendChild(tip);
  function show(ev) {
    var el = ev.target && ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (!el) { tip.style.display = "none"; return; }
    tip.textContent = el.getAttribute("data-tip");
    tip.style.display = "block";
    var vw = document.documentElement.clientWidth, w = tip.offsetWidth, h = tip.offsetHeight;
    var x = Math.max(4, Math.min(ev.clientX + 12, vw - w - 4));
    var y = ev.clientY - h - 12 < 4 ? ev.clientY + 16 : ev.clientY - h - 12;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }
  document.addEventListener("pointermove", show);
  document.addEventListener("pointerdown", show);
  window.addEventListener("scroll", function () { tip.style.display = "none"; }, { passive: true });
  window.addEventListener("beforeprint", function () {
    var d = document.querySelectorAll("details");
    for (var i = 0; i < d.length; i++) { d[i].open = true; }
  });
})();
