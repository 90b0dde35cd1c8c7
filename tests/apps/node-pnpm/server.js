// A small Node.js app: tells what its build did and what it runs with.
const fs = require("fs");
const http = require("http");
const ms = require("ms");

function present(file) { return fs.existsSync(file) ? "ran" : "skipped"; }
// (in node_modules itself: Debian's Node.js also finds its own packages, is-number among them)
function installed(name) { return fs.existsSync(`node_modules/${name}`) ? "present" : "absent"; }

http.createServer((request, response) => {
  response.end([
    `${process.env.APP_KIND} app: NODE_ENV=${process.env.NODE_ENV}`,
    `prebuild=${present("prebuild.txt")} postbuild=${present("postbuild.txt")} build=${present("build.txt")}`,
    `devDependency=${installed("is-number")} ms=${ms("2 days")}`,
  ].join("\n") + "\n");
}).listen(process.env.PORT);
