// tlsrpt dashboard: progressive enhancement only. Every page works without
// this file; it adds a confirmation to forms marked data-confirm.
"use strict";
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});
