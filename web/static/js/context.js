// The master plan as context under a small map: its current version's vector tiles, by class group.
window.multiplanContext = function (map, template) {
  "use strict";
  if (!template || !L.vectorGrid) { return null; }
  if (!L.DomEvent.fakeStop) { L.DomEvent.fakeStop = L.DomEvent.stopPropagation; }  // VectorGrid 1.3 on Leaflet 1.9
  var colours = {"01": "#f7dc6f", "02": "#d4ac0d", "03": "#27ae60", "04": "#a9dfbf", "05": "#76d7c4",
                 "06": "#f0b27a", "07": "#f5b7b1", "08": "#ec7063", "09": "#e74c3c", "10": "#a569bd",
                 "11": "#cb4335", "12": "#aab7b8", "13": "#85929e", "14": "#58d68d", "15": "#e59866",
                 "16": "#dc7633", "17": "#5dade2", "18": "#85c1e9", "19": "#85c1e9"};
  return L.vectorGrid.protobuf(template, {
    vectorTileLayerStyles: {overall: function (p) {
      return {fill: true, fillColor: colours[String(p.ydyh_code || "").slice(0, 2)] || "#d5dbdb",
              fillOpacity: 0.45, color: "#ffffff", weight: 0.6};
    }},
    interactive: false, maxNativeZoom: 20, rendererFactory: L.canvas.tile,
    fetchOptions: {credentials: "same-origin"}
  }).addTo(map);
};
