// JWT bearer verification for nginx 1.22 + njs 0.7.9, called through auth_request
// (see nginx.conf.in). Mirrors gauntlet's reference gateway: exactly one Authorization
// header carrying "Bearer <jwt>"; header alg RS256 or ES256 under a known kid (the kid's
// key fixes the algorithm, so alg none / HS256 key confusion / unknown kid are refused);
// the signature verified with crypto.subtle (RSASSA-PKCS1-v1_5 / ECDSA P-256, both in
// njs 0.7.9); exp required, exp/nbf with 30 s leeway; iss and aud; sub must equal the client
// certificate's CN; an optional group ($jwt_need) from the token's groups or the cert OU.
//
// Answers 204 with X-Jwt-Sub (picked up by auth_request_set), 401 for a missing or invalid
// token, 403 when the token is not bound to the certificate or lacks the group.
// Variables read: $jwt_keys_dir (directory holding jwt-rs256.pub.pem and jwt-es256.pub.pem),
// $jwt_need (required group, empty for any), $client_cn, $client_ou (maps on $ssl_client_s_dn).
import fs from 'fs';

const ISSUER = 'https://idp.gauntlet.test';
const AUDIENCE = 'gauntlet-gateway';
const LEEWAY = 30;
const KEYS = {
    'rs256-1': {
        alg: 'RS256', file: 'jwt-rs256.pub.pem',
        imp: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        ver: { name: 'RSASSA-PKCS1-v1_5' },
    },
    'es256-1': {
        alg: 'ES256', file: 'jwt-es256.pub.pem',
        imp: { name: 'ECDSA', namedCurve: 'P-256' },
        ver: { name: 'ECDSA', hash: 'SHA-256' },
    },
};
const SEG = /^[A-Za-z0-9_-]+$/;

function spki(pem) {
    const b64 = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, '').replace(/\s+/g, '');
    return Buffer.from(b64, 'base64');
}

function json(seg) {
    return JSON.parse(Buffer.from(seg, 'base64url').toString());
}

function refuse(r, status, why) {
    r.headersOut['X-Jwt-Why'] = why;
    r.return(status);
}

async function verify(r) {
    try {
        const auths = r.rawHeadersIn.filter((h) => h[0].toLowerCase() === 'authorization');
        if (auths.length === 0) {
            return refuse(r, 401, 'no-token');
        }
        if (auths.length > 1) {
            return refuse(r, 401, 'two-authz'); // auth_request can only say 2xx/401/403
        }
        const m = /^Bearer +(\S+)$/.exec(auths[0][1]);
        if (!m) {
            return refuse(r, 401, 'not-bearer');
        }
        const parts = m[1].split('.');
        if (parts.length !== 3 || !parts.every((p) => SEG.test(p))) {
            return refuse(r, 401, 'malformed');
        }
        const header = json(parts[0]);
        const key = KEYS[header.kid];
        if (!key || header.alg !== key.alg) {
            return refuse(r, 401, 'alg-or-kid');
        }
        const pem = fs.readFileSync(r.variables.jwt_keys_dir + '/' + key.file, 'utf8');
        const ck = await crypto.subtle.importKey('spki', spki(pem), key.imp, false, ['verify']);
        const ok = await crypto.subtle.verify(key.ver, ck, Buffer.from(parts[2], 'base64url'),
            Buffer.from(parts[0] + '.' + parts[1]));
        if (!ok) {
            return refuse(r, 401, 'signature');
        }
        const c = json(parts[1]);
        const now = Math.floor(Date.now() / 1000);
        if (typeof c.exp !== 'number' || c.exp + LEEWAY <= now) {
            return refuse(r, 401, 'exp');
        }
        if (c.nbf !== undefined && (typeof c.nbf !== 'number' || c.nbf - LEEWAY > now)) {
            return refuse(r, 401, 'nbf');
        }
        if (c.iss !== ISSUER) {
            return refuse(r, 401, 'iss');
        }
        const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
        if (aud.indexOf(AUDIENCE) < 0) {
            return refuse(r, 401, 'aud');
        }
        if (typeof c.sub !== 'string' || c.sub === '') {
            return refuse(r, 401, 'sub');
        }
        if (c.sub !== r.variables.client_cn) {
            return refuse(r, 403, 'sub-not-cn');
        }
        const need = r.variables.jwt_need;
        const groups = Array.isArray(c.groups) ? c.groups : [];
        if (need && groups.indexOf(need) < 0 && r.variables.client_ou !== need) {
            return refuse(r, 403, 'rbac');
        }
        r.headersOut['X-Jwt-Sub'] = c.sub;
        r.return(204);
    } catch (e) {
        refuse(r, 401, 'error');
    }
}

export default { verify };
