// Live alarms: the alarms page works without this script; with it, alarm events from the
// console's /alarms/events stream appear at the top of the page as they happen.
(function () {
  "use strict";
  var list = document.getElementById("live");
  if (!list || !window.EventSource) { return; }
  var source = new EventSource("/alarms/events");
  source.addEventListener("alarm", function (event) {
    var item = document.createElement("li");
    item.textContent = event.data;
    list.insertBefore(item, list.firstChild);
  });
})();
