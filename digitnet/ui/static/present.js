/* The presenter view: gr.HTML's js_on_load for digitnet/ui/present.py's room side. On a page
   opened with ?view=present (a projector's) the tabs are marked, and static/present.css lays
   them out: the pad and the answer large, the room beside them, no tabs and no knobs. The
   mark goes on #tabs, not on <html>: Gradio scopes page CSS to what is inside its container
   (".gradio-container .contain ..."), and only a rule scoped so outranks the page's own. */
const view = new URLSearchParams(globalThis.location.search).get("view");
if ((view || "").trim().toLowerCase() === "present") {
  (element.closest("#tabs") ?? document.getElementById("tabs"))?.classList.add(
    "digitnet-present",
  );
}
