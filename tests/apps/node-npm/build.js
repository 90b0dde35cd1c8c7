// `npm run build`: the buildpack runs it at build time; the server reads what it wrote.
const fs = require("fs");
fs.mkdirSync("build", { recursive: true });
fs.writeFileSync("build/message.txt", "built by npm run build");
console.log("wrote build/message.txt");
