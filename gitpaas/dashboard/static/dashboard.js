// The dashboard's live parts, and nothing else: every page reads the same without this file.
// A page with data-live opens that server-sent event stream; each event named like an element's
// data-fragment replaces that element's HTML (rendered and escaped by the server); "output"
// events append to the page's release output; "end" closes the stream.
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) { return; }
  var stream = new EventSource(url);
  document.querySelectorAll("[data-fragment]").forEach(function (element) {
    stream.addEventListener(element.getAttribute("data-fragment"), function (event) {
      element.innerHTML = event.data;
    });
  });
  var output = document.querySelector("[data-output]");
  stream.addEventListener("output", function (event) {
    if (!output) { return; }
    var atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    output.textContent += event.data;
    if (atBottom) { output.scrollTop = output.scrollHeight; }
  });
  stream.addEventListener("end", function () {
    stream.close();
    document.body.setAttribute("data-ended", "yes");
  });
  stream.addEventListener("open", function () { document.body.setAttribute("data-connected", "yes"); });
})();
