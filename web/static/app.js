document.getElementById("app").textContent = "Sotto";
