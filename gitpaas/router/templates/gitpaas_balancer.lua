-- The router's balancer: copied here by gitpaas (from gitpaas/router/templates), edits are overwritten.
--
-- Each app's upstream calls balance(app, listed, number) with the backends its apps/APP.conf
-- lists and the number gitpaas gave that version of the file (each above every one before it
-- in the home: lua/number). When only an app's backends change (a deploy, a rollback, a scale), gitpaas writes the
-- file with the next number and POSTs that number and the list to /__gitpaas/backends, which
-- keeps them in the shared dict; every request balanced after that answer goes to the new list,
-- with no reload. A request takes whichever is newer, the list its worker loaded or the dict's:
-- so a worker still running an older configuration (the old one during a reload's first 100 ms,
-- or one respawned after a crash) follows the dict, and a file loaded after a push that never
-- arrived wins over the dict.
--
-- Round robin. A backend that could not be reached (or timed out) is left out for FAIL_TIMEOUT
-- seconds and the request is tried on the next one, as nginx's max_fails=1 fail_timeout=5s
-- (which the files of apps with names for backends still use).

local balancer = require "ngx.balancer"

local M = {}

local FAIL_TIMEOUT = 5
local pushed = ngx.shared.gitpaas_backends
local turn = {}    -- app -> the index of the backend it was given last (per worker)
local failed = {}  -- "host:port" -> until when it is left out

local function current(app, listed, number)
    local entry = pushed:get(app)  -- "NUMBER HOST:PORT HOST:PORT ..."
    if entry then
        local peers, newer = {}, nil
        for word in entry:gmatch("%S+") do
            if newer == nil then
                newer = tonumber(word) > number
                if not newer then return listed end
            else
                peers[#peers + 1] = word
            end
        end
        return peers
    end
    return listed
end

function M.balance(app, listed, number)
    local ctx = ngx.ctx
    local now = ngx.now()
    local peers = ctx.gitpaas_peers
    if peers == nil then
        peers = current(app, listed, number)
        ctx.gitpaas_peers = peers
        ctx.gitpaas_tried = {}
        if #peers > 1 then
            balancer.set_more_tries(#peers - 1)
        end
    elseif ctx.gitpaas_peer then
        failed[ctx.gitpaas_peer] = now + FAIL_TIMEOUT  -- this is a retry: the last one failed
    end
    local count, tried, start = #peers, ctx.gitpaas_tried, turn[app] or 0
    local choice
    -- first one neither tried nor failed lately; else one not tried yet; else any: nginx also
    -- retries the same backend on a new connection when a kept-alive one was closed under it
    for pass = 1, 3 do
        for step = 1, count do
            local index = (start + step - 1) % count + 1
            local peer = peers[index]
            if pass == 3 or (not tried[peer] and (pass == 2 or (failed[peer] or 0) <= now)) then
                choice = index
                break
            end
        end
        if choice then break end
    end
    turn[app] = choice
    local peer = peers[choice]
    tried[peer] = true
    ctx.gitpaas_peer = peer
    -- "[::1]:9000" keeps its brackets: nginx parses the address as a URL
    local host, port = peer:match("^(.+):(%d+)$")
    local ok, err = balancer.set_current_peer(host, tonumber(port))
    if not ok then
        ngx.log(ngx.ERR, "gitpaas: backend ", peer, " of ", app, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

-- POST /__gitpaas/backends, body "APP\nNUMBER\nHOST:PORT HOST:PORT ...", with the router's token;
-- an empty list forgets the app's (it was removed). A number not above the one kept is refused
-- (409): a push that arrives late must not take the place of a newer one.
function M.set_backends(token)
    if ngx.req.get_method() ~= "POST" then
        return ngx.exit(405)
    end
    -- hashes compared, so the time taken says nothing about how much of the token matched
    if ngx.sha1_bin(ngx.var.http_x_gitpaas_router_token or "") ~= ngx.sha1_bin(token) then
        return ngx.exit(403)
    end
    ngx.req.read_body()
    local app, number, list = (ngx.req.get_body_data() or ""):match("^([a-z0-9-]+)\n(%d+)\n([0-9a-f.:%[%] ]*)$")
    if app == nil then
        return ngx.exit(400)
    end
    if list == "" then
        pushed:delete(app)
        ngx.say("ok")
        return
    end
    for peer in list:gmatch("%S+") do
        if not (peer:match("^[0-9.]+:%d+$") or peer:match("^%[[0-9a-f:.]+%]:%d+$")) then
            return ngx.exit(400)
        end
    end
    if not list:match("%S") then
        return ngx.exit(400)
    end
    local kept = pushed:get(app)
    if kept and tonumber(kept:match("^%d+")) >= tonumber(number) then
        return ngx.exit(409)
    end
    local ok, err = pushed:safe_set(app, number .. " " .. list)
    if not ok then
        ngx.log(ngx.ERR, "gitpaas: could not keep the backends of ", app, ": ", err)
        return ngx.exit(500)
    end
    ngx.say("ok")
end

return M
